/**
 * What core remembers about a registry between runs, in one small file per registry under the
 * state dir (`<stateDir>/registries/<id>.json`): the entry form it refused (so later saves go
 * straight to the compatible form) and the capabilities its answers showed. Keyed by the
 * registry's host from the store's location, never by a list of known host names; every record
 * expires, so a registry that changes its rules is asked again.
 */
import { createHash } from 'node:crypto';
import { mkdir, readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { EntryForm } from '../entry/format.js';

/** How long a refusal of the standard form is remembered: 7 days. */
export const FORM_REFUSAL_TTL_MS = 7 * 24 * 60 * 60 * 1000;

/** How long probed capabilities are trusted before a save asks again: 24 hours. */
export const CAPABILITIES_TTL_MS = 24 * 60 * 60 * 1000;

/** What is remembered about one registry. */
export interface RegistryState {
  /** The registry (`HOST[:PORT]` of an `oci://` location, else the location itself). */
  registry: string;
  /** The registry refused the standard form: save in the compatible form until `until`. */
  refused?: { form: EntryForm; code: string; at: string; until: string };
  /** Capabilities seen in the registry's answers (see `probeCapabilities`), with their expiry. */
  capabilities?: { values: Record<string, boolean | number>; at: string; until: string };
}

/** The registry part of a store location: `HOST[:PORT]` of `oci://HOST[:PORT]/REPO`. */
export function registryOf(location: string): string {
  if (location.startsWith('oci://')) {
    const rest = location.slice('oci://'.length);
    const slash = rest.indexOf('/');
    return slash === -1 ? rest : rest.slice(0, slash);
  }
  return location;
}

function fileOf(stateDir: string, registry: string): string {
  const id = createHash('sha256').update(registry).digest('hex').slice(0, 40);
  return join(stateDir, 'registries', `${id}.json`);
}

/** The remembered state of the registry of `location` (expired parts dropped). Never throws. */
export async function recallRegistry(
  stateDir: string | false,
  location: string | undefined,
  now = Date.now(),
): Promise<RegistryState | undefined> {
  if (stateDir === false || location === undefined) return undefined;
  const registry = registryOf(location);
  try {
    const doc = JSON.parse(await readFile(fileOf(stateDir, registry), 'utf8')) as RegistryState;
    if (typeof doc !== 'object' || doc === null || doc.registry !== registry) return undefined;
    const live = (v: { until?: unknown } | undefined) =>
      v !== undefined && typeof v.until === 'string' && Date.parse(v.until) > now;
    const out: RegistryState = { registry };
    if (live(doc.refused) && doc.refused?.form === 'standard') out.refused = doc.refused;
    if (live(doc.capabilities) && typeof doc.capabilities?.values === 'object')
      out.capabilities = doc.capabilities;
    return out;
  } catch {
    return undefined;
  }
}

/**
 * Merges `patch` into the remembered state of the registry of `location`. Best effort: never
 * throws (a lost record costs one more refused push or probe).
 */
export async function rememberRegistry(
  stateDir: string | false,
  location: string | undefined,
  patch: Omit<RegistryState, 'registry'>,
  now = Date.now(),
): Promise<void> {
  if (stateDir === false || location === undefined) return;
  const registry = registryOf(location);
  try {
    const current = (await recallRegistry(stateDir, location, now)) ?? { registry };
    const file = fileOf(stateDir, registry);
    await mkdir(join(stateDir, 'registries'), { recursive: true });
    const tmp = `${file}.${process.pid}.tmp`;
    await writeFile(tmp, JSON.stringify({ ...current, ...patch, registry }));
    await rename(tmp, file);
  } catch {
    // NOTE: see the doc comment: losing this record only costs a retry.
  }
}
