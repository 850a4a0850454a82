/**
 * The import rules the compiler cannot see. tsconfig.pure.json already rejects DOM and Node
 * APIs in src/pow, src/dpow, src/log.ts and src/format.ts, but a pure file importing an edge
 * module that happens to typecheck (a type from src/server, say) would still pass it; and import
 * circles are legal TypeScript. Both are checked here from the sources' own import lines.
 */
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const SRC = path.dirname(fileURLToPath(import.meta.url));
/** Pure code: the engine, the protocol, and the two modules every part shares. */
const PURE = ['pow', 'dpow', 'log.ts', 'format.ts'];
const EDGES = ['pow-browser', 'pow-node', 'app', 'lab', 'server', 'cli', 'testkit'];

function sources(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name);
    if (e.isDirectory()) return sources(p);
    return /\.tsx?$/.test(e.name) && !e.name.endsWith('.d.ts') ? [p] : [];
  });
}

/**
 * Relative imports (static, re-exports and dynamic), resolved to files under src/; with
 * `loadedWithIt`, only those that load the target whenever this file loads (no import() and no
 * `import type`, which the compiler erases).
 */
function importsOf(file: string, loadedWithIt = false): string[] {
  const text = readFileSync(file, 'utf8');
  const specs = [...text.matchAll(/(?:^|\n)\s*(?:import|export)\s[^;]*?from\s*['"](\.[^'"]+)['"]|import\(\s*['"](\.[^'"]+)['"]\s*\)/g)];
  return specs
    .filter((m) => !loadedWithIt || (m[1] && !/^\s*(?:import|export)\s+type\s/.test(m[0])))
    .map((m) => path.resolve(path.dirname(file), m[1] ?? m[2]!));
}

const files = sources(SRC);
const rel = (p: string) => path.relative(SRC, p);

describe('module boundaries', () => {
  it('the engine and the protocol import nothing from an edge (tests may)', () => {
    const crossings = files
      .filter((f) => PURE.includes(rel(f).split(path.sep)[0]!) && !f.endsWith('.test.ts'))
      .flatMap((f) => importsOf(f).filter((t) => EDGES.includes(rel(t).split(path.sep)[0]!)).map((t) => `${rel(f)} -> ${rel(t)}`));
    expect(crossings).toEqual([]);
  });

  it('the feeds import no simulator, and the server loads the simulators and the demo only when asked (import())', () => {
    const isSim = (t: string) => rel(t).startsWith(`server${path.sep}sim${path.sep}`);
    const product = files.filter((f) => rel(f).startsWith(`server${path.sep}`) && !isSim(f) && !f.endsWith('.test.ts'));
    const fromFeeds = product
      .filter((f) => rel(f).startsWith(`server${path.sep}feeds${path.sep}`))
      .flatMap((f) => importsOf(f).filter(isSim).map((t) => `${rel(f)} -> ${rel(t)}`));
    expect(fromFeeds).toEqual([]);
    const loadedAlways = product.flatMap((f) => importsOf(f, true).filter(isSim).map((t) => `${rel(f)} -> ${rel(t)}`));
    expect(loadedAlways).toEqual([]);
  });

  it('no source file of the server is over 650 lines (a part that grows past it is split by job)', () => {
    const long = files
      .filter((f) => rel(f).startsWith(`server${path.sep}`) && !f.endsWith('.test.ts'))
      .map((f) => [rel(f), readFileSync(f, 'utf8').split('\n').length - 1] as const)
      .filter(([, lines]) => lines > 650);
    expect(long).toEqual([]);
  });

  it('no two modules import each other, directly or around a loop', () => {
    const graph = new Map(files.map((f) => [f, importsOf(f).filter((t) => files.includes(t))]));
    const cycles: string[] = [];
    const state = new Map<string, 'open' | 'done'>();
    const stack: string[] = [];
    const visit = (f: string) => {
      state.set(f, 'open');
      stack.push(f);
      for (const t of graph.get(f)!) {
        if (state.get(t) === 'open') cycles.push([...stack.slice(stack.indexOf(t)), t].map(rel).join(' -> '));
        else if (!state.has(t)) visit(t);
      }
      stack.pop();
      state.set(f, 'done');
    };
    for (const f of files) if (!state.has(f)) visit(f);
    expect(cycles).toEqual([]);
  });
});
