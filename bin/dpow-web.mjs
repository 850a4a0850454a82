#!/usr/bin/env node
// The dpow-web command. The sources are TypeScript; tsx compiles them on load so the CLI,
// the dispatcher and the headless worker run from the same files as the tests.
import { register } from 'tsx/esm/api';

register();
const { main } = await import('../src/cli/main.ts');
process.exitCode = await main(process.argv.slice(2));
