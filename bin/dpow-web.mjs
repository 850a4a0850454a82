#!/usr/bin/env node
// The dpow-web command. Two ways to run, chosen here:
//   - an installed package (npm pack / npm install -g): the JavaScript that `npm run build`
//     compiled into lib/ (tsconfig.build.json), run by plain Node;
//   - the dev checkout (src/ present and tsx installed as a devDependency): the TypeScript
//     sources through tsx, so the CLI runs the same files as the tests, with no build step.
// DPOW_WEB_BUILT=1 runs lib/ in a checkout too (after `npm run build`), as the package would.
import { existsSync } from 'node:fs';

const sources = new URL('../src/cli/main.ts', import.meta.url);
const built = new URL('../lib/cli/main.js', import.meta.url);

async function loadMain() {
  if (process.env.DPOW_WEB_BUILT !== '1' && existsSync(sources)) {
    const tsx = await import('tsx/esm/api').catch(() => null);
    if (tsx) {
      tsx.register();
      return (await import(sources.href)).main;
    }
  }
  if (existsSync(built)) return (await import(built.href)).main;
  process.stderr.write('dpow-web: lib/cli/main.js is missing; run `npm run build` (or `npm install` for tsx) first\n');
  process.exit(1);
}

const main = await loadMain();
process.exitCode = await main(process.argv.slice(2));
