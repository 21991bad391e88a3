export { main, runCli } from './cli.js';
export type { TaskfileErrorCode } from './errors.js';
export { CommandFailedError, TaskfileError } from './errors.js';
export {
  fingerprintPath,
  isUpToDate,
  outputsPresent,
  readFingerprint,
  writeFingerprint,
} from './fingerprint.js';
export type { ProgressBar, ProgressBarOptions, ProgressStream, ProgressUpdate } from './progress.js';
export { createProgressBar, renderProgressLine } from './progress.js';
export type { RunTasksOptions } from './runner.js';
export { runTasks } from './runner.js';
export type {
  CacheDefinition,
  CommandDefinition,
  TaskDefinition,
  Taskfile,
  VarDefinition,
  VarEntry,
} from './taskfile.js';
export { loadTaskfile, parseTaskfile, TASKFILE_NAMES } from './taskfile.js';
export type { RenderOptions, TemplateFunction, TemplateValue } from './template.js';
export { renderTemplate } from './template.js';
