/**
 * Python's `str.strip(chars)` / `lstrip(chars)` / `rstrip(chars)` for chat templates.
 *
 * @huggingface/jinja (0.5.11, the latest) ignores the argument and strips whitespace, so Qwen3's
 * `content.lstrip('\n')` also eats the leading spaces of a reply and the ids differ from what
 * transformers' apply_chat_template gives. Parsed templates are rewritten so that every
 * `x.strip(chars)` call with an argument becomes a call of a function of ours with Python's
 * semantics; calls without an argument keep the library's whitespace strip.
 */
import type { Template } from '@huggingface/jinja';

type StripKind = 'strip' | 'lstrip' | 'rstrip';

const FUNCTION_NAMES: Record<StripKind, string> = {
  strip: '__dpo_ts_py_strip',
  lstrip: '__dpo_ts_py_lstrip',
  rstrip: '__dpo_ts_py_rstrip',
};

interface AstNode {
  type: string;
  [key: string]: unknown;
}

function isNode(value: unknown): value is AstNode {
  return typeof value === 'object' && value !== null && typeof (value as { type?: unknown }).type === 'string';
}

function stripKind(node: AstNode): StripKind | undefined {
  if (node.type !== 'CallExpression' || !Array.isArray(node.args) || node.args.length === 0) return undefined;
  const callee = node.callee;
  if (!isNode(callee) || callee.type !== 'MemberExpression' || callee.computed) return undefined;
  const property = callee.property;
  const name = isNode(property) && property.type === 'Identifier' ? property.value : undefined;
  return name === 'strip' || name === 'lstrip' || name === 'rstrip' ? name : undefined;
}

/** Rewrites `x.strip(chars)` into `__dpo_ts_py_strip(x, chars)` throughout a parsed template. */
export function rewriteStripCalls(template: Template): void {
  const seen = new Set<object>();
  const visit = (value: unknown): void => {
    if (typeof value !== 'object' || value === null || seen.has(value)) return;
    seen.add(value);
    if (Array.isArray(value)) {
      value.forEach(visit);
      return;
    }
    if (isNode(value)) {
      const kind = stripKind(value);
      if (kind) {
        const callee = value.callee as AstNode;
        // The interpreter dispatches on `type` and reads an identifier's `value`.
        value.args = [callee.object, ...(value.args as unknown[])];
        value.callee = { type: 'Identifier', value: FUNCTION_NAMES[kind] };
      }
    }
    for (const child of Object.values(value)) visit(child);
  };
  visit((template as unknown as { parsed: unknown }).parsed);
}

function pyStrip(kind: StripKind, text: unknown, chars: unknown): string {
  if (typeof text !== 'string') throw new Error(`${kind}() called on a ${text === null ? 'none' : typeof text}, not a string`);
  if (chars === null || chars === undefined) return kind === 'strip' ? text.trim() : kind === 'lstrip' ? text.trimStart() : text.trimEnd();
  if (typeof chars !== 'string') throw new Error(`${kind}() argument must be a string or none`);
  // Python strips code points; spreading a string splits it into code points too.
  const set = new Set(chars);
  const points = [...text];
  let start = 0;
  let end = points.length;
  if (kind !== 'rstrip') while (start < end && set.has(points[start])) start++;
  if (kind !== 'lstrip') while (end > start && set.has(points[end - 1])) end--;
  return points.slice(start, end).join('');
}

/** The functions the rewritten calls need, to add to every render's context. */
export const STRIP_FUNCTIONS: Readonly<Record<string, (text: unknown, chars?: unknown) => string>> = {
  [FUNCTION_NAMES.strip]: (text, chars) => pyStrip('strip', text, chars),
  [FUNCTION_NAMES.lstrip]: (text, chars) => pyStrip('lstrip', text, chars),
  [FUNCTION_NAMES.rstrip]: (text, chars) => pyStrip('rstrip', text, chars),
};
