/**
 * bench:scale child: one dispatcher-only server (createServer, as `dpow-web start
 * --dispatcher-only` runs it) in its own process, so its memory is its own, driven by the parent
 * over IPC. argv: <broker url[,url…] (the nodes of a cluster)> <server password> <store: sqlite path | redis url> [shared group]
 *
 *   parent -> { cmd: 'precache', jobs: [[hash, difficulty hex]...] }  publishes the jobs
 *   parent -> { cmd: 'counters' }   child -> { counters, rssBytes, heapBytes }
 */
import { createServer } from '../../src/server/create-server.ts';
import { createLogger } from '../../src/server/log.ts';

const [brokerUrls, password, storeSpec, sharedGroup] = process.argv.slice(2);
const [url, ...failoverUrls] = brokerUrls.split(',');
const server = await createServer({
  kind: 'dispatcher',
  broker: { kind: 'external', url, failoverUrls, username: 'server', password, sharedGroup },
  store: { kind: 'open', choice: storeSpec.startsWith('redis') ? { dataDir: '', url: storeSpec } : { dataDir: storeSpec } },
  dispatcher: { precacheTtlMs: 10 * 60_000 },
  log: createLogger({ secrets: [password] }),
});
const { dispatcher } = server;

process.on('message', (message: { cmd: string; jobs?: Array<[string, string]> }) => {
  if (message.cmd === 'precache') {
    for (const [hash, difficulty] of message.jobs!) void dispatcher.precache(hash, BigInt(`0x${difficulty}`)).catch(() => {});
  } else if (message.cmd === 'counters') {
    const mem = process.memoryUsage();
    const cpu = process.cpuUsage();
    process.send!({ counters: dispatcher.counters, rssBytes: mem.rss, heapBytes: mem.heapUsed, cpuMs: (cpu.user + cpu.system) / 1000 });
  } else if (message.cmd === 'stop') {
    void server.close().then(() => process.exit(0));
  }
});
process.send!({ ready: true });
