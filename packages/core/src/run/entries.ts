import { restoreEntry, saveEntry } from '../entry/lazy.js';
import { hasEntry, lookupEntry } from '../entry/resolve.js';
import type { HasEntry, LookupEntry, RestoreEntry, SaveEntry } from '../entry/types.js';

/** The entry data plane the run drives: the public entry functions, nothing else. */
export interface EntryOps {
  saveEntry: SaveEntry;
  restoreEntry: RestoreEntry;
  lookupEntry: LookupEntry;
  hasEntry: HasEntry;
}

/** The entry functions. */
export const entryOps: EntryOps = { saveEntry, restoreEntry, lookupEntry, hasEntry };
