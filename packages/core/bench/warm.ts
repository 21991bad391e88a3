/**
 * Warm starts (issue 20): an incremental TypeScript build (`incremental`, `tsBuildInfoFile` in
 * `dist/`) with one source file changed, run through `cache.run()` as a cold miss (a fresh checkout,
 * no outputs: tsc compiles everything) and as a warm miss (`fallback: 'latest'`: the task's newest
 * entry — dist/ and the tsbuildinfo — is restored first, then tsc recompiles what changed). Both
 * save their entry. Each pair uses a new change, so every run is a miss; A and B alternate.
 *
 * `pnpm --filter @task-cache/core bench:warm`; BENCH_FILES (default 400 modules), BENCH_RUNS
 * (default 5 pairs).
 */
import { execFile } from 'node:child_process';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { createCache, type RunResult } from '../src/index.js';

const FILES = Number(process.env.BENCH_FILES ?? 400);
const RUNS = Number(process.env.BENCH_RUNS ?? 5);
const tsc = createRequire(import.meta.url).resolve('typescript/bin/tsc');
const run = promisify(execFile);

const work = await mkdtemp(join(tmpdir(), 'tc-bench-warm-'));
const store = `oci-layout:${join(work, 'store')}`;

/** Module `i`: a type and functions built on its predecessor's (a chain the checker follows). */
function moduleSource(i: number, change: number): string {
  const prev = i === 0 ? '' : `import { f${i - 1} } from './m${i - 1}.js';\n`;
  return `${prev}
export interface T${i} { n: number; label: string; tags: readonly string[] }
export function f${i}(x: T${i}): T${i} {
  const base = ${i === 0 ? 'x' : `f${i - 1}(x)`};
  return { ...base, n: base.n + ${i === 0 ? change : i}, label: \`\${base.label}-${i}\`, tags: [...base.tags, 'm${i}'] };
}
export const table${i}: Record<string, T${i}> = Object.fromEntries(
  Array.from({ length: 8 }, (_, k) => [\`k\${k}\`, { n: k, label: 'l', tags: [] }]),
);
export type U${i} = T${i} & { extra${i}: Partial<T${i}>; all: Array<keyof T${i}> };
`;
}

async function checkout(name: string, change: number): Promise<string> {
  const dir = join(work, name);
  await rm(dir, { recursive: true, force: true });
  await mkdir(join(dir, 'src'), { recursive: true });
  await writeFile(
    join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022',
        module: 'NodeNext',
        moduleResolution: 'NodeNext',
        strict: true,
        declaration: true,
        incremental: true,
        outDir: 'dist',
        rootDir: 'src',
        tsBuildInfoFile: 'dist/.tsbuildinfo',
        skipLibCheck: true,
        types: [],
      },
      include: ['src'],
    }),
  );
  await writeFile(join(dir, 'package.json'), '{ "type": "module" }\n');
  for (let i = 0; i < FILES; i++)
    await writeFile(join(dir, 'src', `m${i}.ts`), moduleSource(i, i === 0 ? change : 0));
  return dir;
}

async function cachedBuild(
  dir: string,
  fallback: boolean,
): Promise<{ ms: number; result: RunResult<unknown> }> {
  const cache = createCache({ store, lock: false, stateDir: join(work, 'state'), env: {} });
  const t = performance.now();
  const result = await cache.run(
    {
      task: 'tsc',
      dir,
      sources: ['src/**', 'tsconfig.json'],
      generates: ['dist/**'],
      ...(fallback ? { fallback: 'latest' as const } : {}),
    },
    () => run(process.execPath, [tsc, '-p', 'tsconfig.json'], { cwd: dir }),
  );
  const ms = performance.now() - t;
  await cache.close();
  return { ms, result };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;

console.log(
  `node ${process.version}, ${cpus().length} × ${cpus()[0]?.model ?? '?'}, load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}; ${FILES} modules, ${RUNS} pairs`,
);
// The task's first entry (the pointer tag the warm starts restore).
const first = await cachedBuild(await checkout('seed', 0), false);
console.log(`seed build: ${first.result.status} in ${first.ms.toFixed(0)} ms`);

const cold: number[] = [];
const warm: number[] = [];
let change = 0;
for (let r = 0; r < RUNS; r++) {
  for (const side of r % 2 === 0 ? (['cold', 'warm'] as const) : (['warm', 'cold'] as const)) {
    const dir = await checkout(side, ++change);
    const { ms, result } = await cachedBuild(dir, side === 'warm');
    if (result.status !== 'saved')
      throw new Error(`${side} run ${r}: expected a miss saved, got ${result.status}`);
    if (side === 'warm' && result.restoredFrom === undefined)
      throw new Error(`warm run ${r}: nothing was restored before the build`);
    (side === 'cold' ? cold : warm).push(ms);
    console.log(
      `${side} ${r}: ${ms.toFixed(0)} ms (${result.status}${result.restoredFrom ? `, restoredFrom ${result.restoredFrom.slice(0, 16)}…` : ''}; build ${result.stats.buildMs.toFixed(0)} ms)`,
    );
  }
}
const c = median(cold);
const w = median(warm);
console.log(
  `\nmedian cold miss ${c.toFixed(0)} ms, warm miss ${w.toFixed(0)} ms: warm/cold ${(w / c).toFixed(2)} (${(c / w).toFixed(2)}× faster); load average ${loadavg()
    .map((l) => l.toFixed(2))
    .join(' ')}`,
);
await rm(work, { recursive: true, force: true });
