export { runLabel, DEFAULT_LABEL_PORT, type LabelOptions, type RunningLabel } from './run.js';
export { LabelSession, type Decision, type LabelItem, type LabelState, type LabelSessionOptions, type SampleCompletions } from './session.js';
export { LabelStore, skippedPath } from './store.js';
export { startLabelServer, type LabelServer, type LabelServerOptions } from './server.js';
export { labelPage } from './page.js';
