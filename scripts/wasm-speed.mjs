#!/usr/bin/env node
// WASM kernel speed under Node: hashes per second of the scalar and SIMD kernels through the
// real thread pool (startNodeWasmPool), at a difficulty no search reaches, for a fixed time.
//
//   node scripts/wasm-speed.mjs [--seconds 3] [--threads 1,2]
//
// Prints one line per (kernel, threads): total MH/s and MH/s per thread by the wall clock, and
// MH per CPU-second of the process (all threads), which stays meaningful on a busy machine where
// the threads do not get a core each.
import { register } from 'tsx/esm/api';

register();
const { startNodeWasmPool } = await import('../src/pow-node/wasm-threads.ts');

function option(name, fallback) {
  const at = process.argv.indexOf(`--${name}`);
  return at > 0 && process.argv[at + 1] ? process.argv[at + 1] : fallback;
}

const seconds = Number(option('seconds', '3'));
const threadCounts = option('threads', '1,2').split(',').map(Number);
if (!(seconds > 0) || threadCounts.some((t) => !Number.isInteger(t) || t < 1)) {
  console.error('usage: node scripts/wasm-speed.mjs [--seconds N] [--threads 1,2,...]');
  process.exit(2);
}

const root = new Uint8Array(32).map((_, i) => (i * 37 + 11) & 0xff);

for (const preferSimd of [false, true]) {
  for (const threads of threadCounts) {
    const backend = await startNodeWasmPool({ threads, preferSimd });
    try {
      // Warm up (lets V8 tier the kernel up to its optimizing compiler), then measure.
      for (const ms of [300, seconds * 1000]) {
        const controller = new AbortController();
        let hashes = 0;
        const started = performance.now();
        const cpuStart = process.cpuUsage();
        const timer = setTimeout(() => controller.abort(), ms);
        await backend.search({
          root,
          difficulty: 0xffffffffffffffffn,
          startNonce: 0n,
          signal: controller.signal,
          onHashes: (n) => (hashes += n),
        });
        clearTimeout(timer);
        if (ms === 300) continue;
        const rate = hashes / ((performance.now() - started) / 1000) / 1e6;
        const cpu = process.cpuUsage(cpuStart);
        const perCpuSecond = hashes / ((cpu.user + cpu.system) / 1e6) / 1e6;
        console.log(
          `${backend.label.padEnd(18)} ${rate.toFixed(2).padStart(7)} MH/s  ${(rate / threads).toFixed(2).padStart(6)} MH/s per thread  ${perCpuSecond.toFixed(2).padStart(6)} MH per CPU-second`,
        );
      }
    } finally {
      backend.dispose();
    }
  }
}
