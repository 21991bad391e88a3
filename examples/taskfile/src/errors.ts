/**
 * Typed errors of the example Taskfile runner. Every error has a literal `code`, a message that
 * names the problem and where it is (file, YAML path, template column), and keeps its `cause`.
 */

/** Codes of {@link TaskfileError}. */
export type TaskfileErrorCode =
  | 'ERR_TASKFILE_NOT_FOUND'
  | 'ERR_TASKFILE_INVALID'
  | 'ERR_TEMPLATE_SYNTAX'
  | 'ERR_TEMPLATE_UNSUPPORTED'
  | 'ERR_TEMPLATE_EXEC'
  | 'ERR_TASK_NOT_FOUND'
  | 'ERR_TASK_CYCLE'
  | 'ERR_USAGE';

/** A problem with the Taskfile, a template in it, the requested tasks or the command line. */
export class TaskfileError extends Error {
  override readonly name = 'TaskfileError';
  readonly code: TaskfileErrorCode;
  /** Where the problem is, e.g. `Taskfile.yml: tasks.build.cache.url`. */
  readonly where: string | undefined;

  constructor(code: TaskfileErrorCode, message: string, options: { where?: string; cause?: unknown } = {}) {
    super(options.where ? `${options.where}: ${message}` : message, { cause: options.cause });
    this.code = code;
    this.where = options.where;
  }
}

/** A task's command exited non-zero (or was killed); `exitCode` is what the runner exits with. */
export class CommandFailedError extends Error {
  override readonly name = 'CommandFailedError';
  readonly code = 'ERR_COMMAND_FAILED' as const;
  /** The task whose command failed. */
  readonly task: string;
  /** The command's exit status; 128 + signal number when it was killed by a signal. */
  readonly exitCode: number;

  constructor(task: string, exitCode: number, options: { signal?: string | null; cause?: unknown } = {}) {
    super(
      options.signal
        ? `task "${task}" failed: command killed by ${options.signal}`
        : `task "${task}" failed: exit status ${exitCode}`,
      { cause: options.cause },
    );
    this.task = task;
    this.exitCode = exitCode;
  }
}
