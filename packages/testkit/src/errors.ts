/** Codes of {@link TestkitError}. */
export type TestkitErrorCode =
  | 'TESTKIT_ERR_SPAWN_FAILED'
  | 'TESTKIT_ERR_START_FAILED'
  | 'TESTKIT_ERR_TIMEOUT'
  | 'TESTKIT_ERR_INVALID_OPTION'
  | 'TESTKIT_ERR_COMMAND_FAILED'
  | 'TESTKIT_ERR_MISSING_TOOLS';

/** Error raised by the test fixtures themselves (not by the servers they run). */
export class TestkitError extends Error {
  override readonly name = 'TestkitError';
  /** What went wrong, as a literal code. */
  readonly code: TestkitErrorCode;
  constructor(code: TestkitErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.code = code;
  }
}

/** An error reply (`-ERR ...`, `-WRONGPASS ...`, `-OOM ...`) from redis-server. */
export class RedisReplyError extends Error {
  override readonly name = 'RedisReplyError';
  readonly code = 'TESTKIT_ERR_REDIS_REPLY' as const;
  /** First word of the reply, e.g. `WRONGPASS`, `NOAUTH`, `OOM`. */
  readonly prefix: string;
  constructor(reply: string, options?: { cause?: unknown }) {
    super(reply, options);
    this.prefix = reply.split(' ', 1)[0] ?? '';
  }
}
