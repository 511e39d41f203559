/**
 * A minimal Parquet writer for test fixtures (no Parquet writer is installed and pyarrow is not
 * available): one row group, one uncompressed PLAIN data page (v1) per column, UTF-8 strings,
 * int32, 3-level LISTs and structs, nullable fields. Enough to produce the shapes Hugging Face
 * datasets have (strings, list<string>, list<struct<role, content>>).
 */
import { writeFileSync } from 'node:fs';

export type ParquetField =
  | { name: string; optional?: boolean; kind: 'string' | 'int32' }
  | { name: string; optional?: boolean; kind: 'list'; element: ParquetField }
  | { name: string; optional?: boolean; kind: 'struct'; fields: readonly ParquetField[] };

const T_INT32 = 1;
const T_BYTE_ARRAY = 6;
const CT_UTF8 = 0;
const CT_LIST = 3;
const REQUIRED = 0;
const OPTIONAL = 1;
const REPEATED = 2;

interface Node {
  name: string;
  repetition: number;
  type?: number;
  converted?: number;
  children: Node[];
  maxDef: number;
  maxRep: number;
  path: string[];
  passThrough?: boolean;
}

interface Entry {
  r: number;
  d: number;
  v: unknown;
}

function buildNode(field: ParquetField, parent: { maxDef: number; maxRep: number; path: string[] }): Node {
  return makeNode(field.name, field.optional ? OPTIONAL : REQUIRED, field, parent);
}

function makeNode(name: string, repetition: number, field: ParquetField, parent: { maxDef: number; maxRep: number; path: string[] }): Node {
  const node: Node = {
    name,
    repetition,
    children: [],
    maxDef: parent.maxDef + (repetition === REQUIRED ? 0 : 1),
    maxRep: parent.maxRep + (repetition === REPEATED ? 1 : 0),
    path: [...parent.path, name],
  };
  if (field.kind === 'string') Object.assign(node, { type: T_BYTE_ARRAY, converted: CT_UTF8 });
  else if (field.kind === 'int32') node.type = T_INT32;
  else if (field.kind === 'struct') node.children = field.fields.map((f) => buildNode(f, node));
  else if (field.kind === 'list') {
    node.converted = CT_LIST;
    node.passThrough = true;
    const list: Node = { name: 'list', repetition: REPEATED, passThrough: true, children: [], maxDef: node.maxDef + 1, maxRep: node.maxRep + 1, path: [...node.path, 'list'] };
    list.children = [makeNode('element', OPTIONAL, field.element, list)];
    node.children = [list];
  }
  return node;
}

function leaves(node: Node): Node[] {
  return node.children.length === 0 ? [node] : node.children.flatMap(leaves);
}

// Dremel shredding: each leaf gets (repetition level, definition level, value) entries.
function walk(node: Node, value: unknown, r: number, d: number, out: Map<Node, Entry[]>): void {
  if (node.repetition === REPEATED) {
    const items = (value ?? []) as unknown[];
    if (items.length === 0) return emitNull(node, r, d, out);
    items.forEach((item, j) => visit(node, item, j === 0 ? r : node.maxRep, d + 1, out));
  } else if (node.repetition === OPTIONAL) {
    if (value === null || value === undefined) return emitNull(node, r, d, out);
    visit(node, value, r, d + 1, out);
  } else {
    if (value === null || value === undefined) throw new Error(`required field ${node.path.join('.')} is missing`);
    visit(node, value, r, d, out);
  }
}

function visit(node: Node, value: unknown, r: number, d: number, out: Map<Node, Entry[]>): void {
  if (node.children.length === 0) {
    out.get(node)!.push({ r, d, v: value });
    return;
  }
  for (const child of node.children) {
    // A LIST group and its repeated `list` level carry the JS array / element itself.
    const v = node.passThrough ? value : (value as Record<string, unknown>)[child.name];
    walk(child, v, r, d, out);
  }
}

function emitNull(node: Node, r: number, d: number, out: Map<Node, Entry[]>): void {
  for (const leaf of leaves(node)) out.get(leaf)!.push({ r, d, v: undefined });
}

class Bytes {
  readonly data: number[] = [];
  push(...b: number[]): void {
    for (const x of b) this.data.push(x & 0xff);
  }
  varint(n: number): void {
    while (n >= 0x80) {
      this.data.push((n % 0x80) | 0x80);
      n = Math.floor(n / 0x80);
    }
    this.data.push(n);
  }
  u32le(n: number): void {
    this.push(n, n >>> 8, n >>> 16, n >>> 24);
  }
  append(bytes: ArrayLike<number>): void {
    for (let i = 0; i < bytes.length; i++) this.data.push(bytes[i]);
  }
}

// Thrift compact protocol, just the parts the footer and page headers need.
class Thrift extends Bytes {
  private last: number[] = [0];
  private header(id: number, type: number): void {
    const delta = id - this.last[this.last.length - 1];
    if (delta > 0 && delta <= 15) this.push((delta << 4) | type);
    else {
      this.push(type);
      this.varint(id * 2);
    }
    this.last[this.last.length - 1] = id;
  }
  i32(id: number, v: number): void {
    this.header(id, 5);
    this.varint(v >= 0 ? v * 2 : -v * 2 - 1);
  }
  i64(id: number, v: number): void {
    this.header(id, 6);
    this.varint(v * 2);
  }
  string(id: number, s: string): void {
    this.header(id, 8);
    const b = Buffer.from(s, 'utf8');
    this.varint(b.length);
    this.append(b);
  }
  struct(id: number, body: () => void): void {
    this.header(id, 12);
    this.structBody(body);
  }
  structBody(body: () => void): void {
    this.last.push(0);
    body();
    this.push(0);
    this.last.pop();
  }
  list<T>(id: number, elemType: number, items: T[], write: (item: T) => void): void {
    this.header(id, 9);
    if (items.length < 15) this.push((items.length << 4) | elemType);
    else {
      this.push(0xf0 | elemType);
      this.varint(items.length);
    }
    items.forEach(write);
  }
}

function rleLevels(levels: number[], max: number): Bytes {
  const width = Math.ceil(Math.ceil(Math.log2(max + 1)) / 8);
  const body = new Bytes();
  for (let i = 0; i < levels.length; ) {
    let j = i;
    while (j < levels.length && levels[j] === levels[i]) j++;
    body.varint((j - i) * 2);
    for (let k = 0; k < width; k++) body.push(levels[i] >>> (8 * k));
    i = j;
  }
  const out = new Bytes();
  out.u32le(body.data.length);
  out.append(body.data);
  return out;
}

function schemaElements(t: Thrift, nodes: Node[]): void {
  for (const node of nodes) {
    t.structBody(() => {
      if (node.type !== undefined) t.i32(1, node.type);
      t.i32(3, node.repetition);
      t.string(4, node.name);
      if (node.children.length > 0) t.i32(5, node.children.length);
      if (node.converted !== undefined) t.i32(6, node.converted);
    });
  }
}

function flatten(nodes: Node[]): Node[] {
  return nodes.flatMap((n) => [n, ...flatten(n.children)]);
}

/** Encodes `rows` (plain objects) with `fields` as the schema. */
export function encodeParquet(fields: ParquetField[], rows: Record<string, unknown>[]): Uint8Array {
  const root = { maxDef: 0, maxRep: 0, path: [] as string[] };
  const top = fields.map((f) => buildNode(f, root));
  const columns = top.flatMap(leaves);
  const entries = new Map<Node, Entry[]>(columns.map((c) => [c, []]));
  for (const row of rows) for (const node of top) walk(node, row[node.name], 0, 0, entries);

  const file = new Bytes();
  file.append(Buffer.from('PAR1'));
  const chunks: { node: Node; offset: number; size: number; count: number }[] = [];
  for (const node of columns) {
    const list = entries.get(node)!;
    const page = new Bytes();
    if (node.maxRep > 0) page.append(rleLevels(list.map((e) => e.r), node.maxRep).data);
    if (node.maxDef > 0) page.append(rleLevels(list.map((e) => e.d), node.maxDef).data);
    for (const e of list) {
      if (e.d !== node.maxDef) continue;
      if (node.type === T_INT32) {
        const b = Buffer.alloc(4);
        b.writeInt32LE(e.v as number);
        page.append(b);
      } else {
        const b = Buffer.from(e.v as string, 'utf8');
        page.u32le(b.length);
        page.append(b);
      }
    }
    const header = new Thrift();
    header.structBody(() => {
      header.i32(1, 0);
      header.i32(2, page.data.length);
      header.i32(3, page.data.length);
      header.struct(5, () => {
        header.i32(1, list.length);
        header.i32(2, 0);
        header.i32(3, 3);
        header.i32(4, 3);
      });
    });
    const offset = file.data.length;
    file.append(header.data);
    file.append(page.data);
    chunks.push({ node, offset, size: header.data.length + page.data.length, count: list.length });
  }

  // The root schema element has a name and children but no repetition.
  const footer = new Thrift();
  footer.structBody(() => {
    footer.i32(1, 1);
    const all = flatten(top);
    footer.list(2, 12, [null, ...all], (n) => {
      if (n === null) {
        footer.structBody(() => {
          footer.string(4, 'schema');
          footer.i32(5, top.length);
        });
      } else schemaElements(footer, [n]);
    });
    footer.i64(3, rows.length);
    footer.list(4, 12, [null], () =>
      footer.structBody(() => {
        footer.list(1, 12, chunks, (c) =>
          footer.structBody(() => {
            footer.i64(2, c.offset);
            footer.struct(3, () => {
              footer.i32(1, c.node.type!);
              footer.list(2, 5, [0, 3], (enc) => footer.varint(enc * 2));
              footer.list(3, 8, c.node.path, (p) => {
                const b = Buffer.from(p, 'utf8');
                footer.varint(b.length);
                footer.append(b);
              });
              footer.i32(4, 0);
              footer.i64(5, c.count);
              footer.i64(6, c.size);
              footer.i64(7, c.size);
              footer.i64(9, c.offset);
            });
          }),
        );
        footer.i64(2, chunks.reduce((s, c) => s + c.size, 0));
        footer.i64(3, rows.length);
      }),
    );
    footer.string(6, 'dpo-ts test fixture writer');
  });
  file.append(footer.data);
  file.u32le(footer.data.length);
  file.append(Buffer.from('PAR1'));
  return Uint8Array.from(file.data);
}

/** Writes `rows` to `path` as Parquet. */
export function writeParquet(path: string, fields: ParquetField[], rows: Record<string, unknown>[]): void {
  writeFileSync(path, encodeParquet(fields, rows));
}
