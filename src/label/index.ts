export { runLabel, DEFAULT_LABEL_PORT, type LabelOptions, type RunningLabel } from './run.js';
export { LabelSession, type Decision, type LabelCompletions, type LabelItem, type LabelState, type LabelSessionOptions, type SampleCompletions } from './session.js';
export { LabelStore, labelLockPath, skippedPath, type LabelStoreOptions, type OpenRowFile, type RowFile } from './store.js';
export { loadCompletions, type LoadedCompletions } from './completions.js';
export { LabelError } from './errors.js';
export { startLabelServer, type LabelServer, type LabelServerOptions } from './server.js';
export { labelPage } from './page.js';
