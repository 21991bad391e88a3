import { glob } from 'tinyglobby';

/** The `generates` globs that match no file under `dir` (declared outputs the build did not produce). */
export async function missingOutputs(dir: string, generates: readonly string[]): Promise<string[]> {
  const missing: string[] = [];
  for (const pattern of generates) {
    const found = await glob([pattern], { cwd: dir, dot: true, onlyFiles: true, expandDirectories: false });
    if (found.length === 0) missing.push(pattern);
  }
  return missing;
}
