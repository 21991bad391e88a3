import { hasEntry } from '../entry/resolve.js';
import { restoreEntry } from '../entry/restore.js';
import { saveEntry } from '../entry/save.js';
import type { HasEntry, RestoreEntry, SaveEntry } from '../entry/types.js';

/** The entry data plane the run drives (issue 6: `saveEntry`, `restoreEntry`, `hasEntry`). */
export interface EntryOps {
  saveEntry: SaveEntry;
  restoreEntry: RestoreEntry;
  hasEntry: HasEntry;
}

const ops: EntryOps = { saveEntry, restoreEntry, hasEntry };

/** The entry functions. */
export async function entryOps(): Promise<EntryOps> {
  return ops;
}
