export { buildOptimumDecoderGraph, pastName, presentName } from './decoder-graph.js';
export { checkExportTarget, exportOnnx, EXTERNAL_DATA_THRESHOLD, ONNX_DATA_FILE, ONNX_MODEL_FILE, ONNX_SUBFOLDER, type ExportOnnxOptions, type ExportOnnxResult, type ExternalDataMode } from './onnx-folder.js';
