/** Writing graphs to .onnx files (Node only; onnx-export.ts stays free of files for the browser build). */
import { writeFileSync } from 'node:fs';
import type { Tensor } from './graph.js';
import { toOnnxBytes } from './onnx-export.js';

/** Writes the graph computing `outputs` to a .onnx file (open it in Netron to inspect). */
export function saveOnnx(outputs: Readonly<Record<string, Tensor>>, path: string): void {
  writeFileSync(path, toOnnxBytes(outputs));
}
