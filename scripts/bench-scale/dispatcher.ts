/**
 * bench:scale child: one Dispatcher in its own process (so its memory is its own), driven by
 * the parent over IPC. argv: <broker url> <server password> <store: sqlite path | redis url> [shared group]
 *
 *   parent -> { cmd: 'precache', jobs: [[hash, difficulty hex]...] }  publishes the jobs
 *   parent -> { cmd: 'counters' }   child -> { counters, rssBytes, heapBytes }
 */
import { Dispatcher } from '../../src/server/dispatcher/dispatcher.ts';
import { createLogger } from '../../src/server/log.ts';
import { openStore } from '../../src/server/store/open-store.ts';

const [brokerUrl, password, storeSpec, sharedGroup] = process.argv.slice(2);
const store = await openStore(storeSpec.startsWith('redis') ? { dataDir: '', url: storeSpec } : { dataDir: storeSpec });
const dispatcher = new Dispatcher({
  brokerUrl,
  username: 'server',
  password,
  store,
  log: createLogger({ secrets: [password] }),
  precacheTtlMs: 10 * 60_000,
  ...(sharedGroup ? { sharedGroup } : {}),
});
await dispatcher.start();

process.on('message', (message: { cmd: string; jobs?: Array<[string, string]> }) => {
  if (message.cmd === 'precache') {
    for (const [hash, difficulty] of message.jobs!) void dispatcher.precache(hash, BigInt(`0x${difficulty}`)).catch(() => {});
  } else if (message.cmd === 'counters') {
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    process.send!({ counters: dispatcher.counters, rssBytes: mem.rss, heapBytes: mem.heapUsed, cpuMs: (cpu.user + cpu.system) / 1000 });
  } else if (message.cmd === 'stop') {
    void dispatcher.stop().then(() => store.close()).then(() => process.exit(0));
  }
});
process.send!({ ready: true });
