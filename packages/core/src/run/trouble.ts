/**
 * Cache trouble: which failures are an abort, which count against the store's health, which
 * warning code a failure becomes, and a short secret-free description for the warning. Decided by
 * error class and code only, never by an error's message.
 */
import { classifyRedisFailure, LockUnavailableError } from '@task-cache/lock';
import { redactUrls, StoreLimitError } from '@task-cache/oci';
import { EntryError, EntryTooLargeError } from '../errors.js';
import type { CacheWarningCode } from '../events/types.js';

const codeOf = (error: unknown): unknown => (error as { code?: unknown } | null | undefined)?.code;

/** `true` when `error` is the abort of `signal` (or any `AbortError`): it propagates, never a warning. */
export function isAbort(error: unknown, signal: AbortSignal | undefined): boolean {
  if (signal?.aborted === true && error === signal.reason) return true;
  return (error as Error | null | undefined)?.name === 'AbortError';
}

/** A short, secret-free reason for a warning message: the first line, redacted, with the code. */
export function describe(error: unknown): { message: string; code?: string } {
  if (error instanceof Error) {
    const code = codeOf(error);
    const message = redactUrls(error.message.split('\n')[0] ?? '');
    return typeof code === 'string' ? { message: `${message} [${code}]`, code } : { message };
  }
  return { message: redactUrls(String(error)) };
}

/** Codes that say the store did not answer (as opposed to answering with a refusal). */
const UNREACHABLE_CODES = new Set(['OCI_ERR_TIMEOUT', 'OCI_ERR_NETWORK', 'CACHE_ERR_TIMEOUT']);

/**
 * `true` when a failure says the store did not answer in time (a timeout, a refused or reset
 * connection): the rest of the call skips it rather than paying the same wait again.
 */
export function isUnreachable(error: unknown): boolean {
  const code = codeOf(error);
  return typeof code === 'string' && UNREACHABLE_CODES.has(code);
}

/** Redis refused a write for lack of memory (the entry store or the lock's server). */
export function isOom(error: unknown): boolean {
  // NOTE: by code and classification only (a typed store or lock error, or a raw Redis `OOM` reply
  // from a user's store), never by the message text.
  if (codeOf(error) === 'CACHE_ERR_REDIS_OOM') return true;
  if (error instanceof LockUnavailableError) return error.reason === 'oom';
  return classifyRedisFailure(error) === 'oom';
}

/** An entry above a size cap: core's {@link EntryTooLargeError} or a store's own refusal. */
export function isEntryTooLarge(error: unknown): boolean {
  return (
    error instanceof EntryTooLargeError ||
    error instanceof StoreLimitError ||
    codeOf(error) === 'CACHE_ERR_ENTRY_TOO_LARGE'
  );
}

/**
 * `true` when a failure says something about the store's health (it feeds the circuit breaker).
 * A bad or too large entry is about that entry only.
 */
export function countsAgainstStore(error: unknown): boolean {
  return !(error instanceof EntryError) && !isEntryTooLarge(error);
}

/** The warning code of a store operation's failure; `fallback` names the operation's own. */
export function storeTrouble(error: unknown, fallback: CacheWarningCode): CacheWarningCode {
  if (isOom(error)) return 'STORE_OUT_OF_MEMORY';
  if (isEntryTooLarge(error)) return 'ENTRY_TOO_LARGE';
  return fallback;
}
