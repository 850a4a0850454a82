/**
 * `dpow-web mqtt-front [--broker mqtt://127.0.0.1:1884] [--host 127.0.0.1] [--port 9001]
 *  [--tcp-port N] [--tcp-host ADDR] [--trusted-proxy ADDR] [--metrics-port N]
 *  [--mqtt-max-connections-per-source N] [--mqtt-max-connections N] [--mqtt-max-packet BYTES]`
 *  (--help lists them)
 *
 * The volunteers' MQTT over WebSocket, and with --tcp-port over plain TCP, in front of a broker
 * that cannot bound packets before login itself (src/server/mqtt-front.ts): each connection is
 * admitted per source and in total (one count for both entries), its packets' sizes are checked
 * at their headers, and its bytes go unchanged to the broker's TCP listener. The TLS proxy sends
 * /mqtt here (deploy/nginx/dpow-web.conf, deploy/mosquitto/README.md, deploy/rabbitmq/README.md). With --metrics-port it serves
 * /metrics, /healthz and /readyz (ready while Mosquitto accepts connections) on a port of its own;
 * /metrics is for loopback callers, or anyone with HTTP Basic `metrics:$DPOW_METRICS_PASSWORD`.
 * Ctrl-C or SIGTERM closes it; a bad option exits 2.
 */
import { isIP } from 'node:net';
import { CliError, collect, defineCommand, intOption, parseCommand, portOption } from './args.ts';
import { DEFAULT_CONNECTION_CAPS as CAPS } from '../server/connection-limit.ts';
import { hashApiKey } from '../server/http/api-keys.ts';
import { MetricsServer } from '../server/http/metrics-server.ts';
import { createLogger } from '../server/log.ts';
import { DEFAULT_FRONT_PORT, MqttFront } from '../server/mqtt-front.ts';
import { DEFAULT_PACKET_LIMITS } from '../server/mqtt-packet-size.ts';

export const DEFAULT_FRONT_BROKER = 'mqtt://127.0.0.1:1884';

export function command() {
  return defineCommand('mqtt-front')
    .option('--broker <url>', "the broker's TCP listener for volunteers (deploy/mosquitto/mosquitto.conf has one on 1884)", DEFAULT_FRONT_BROKER)
    .option('--host <addr>', 'interface to listen on (and for --metrics-port)', '127.0.0.1')
    .option('--port <n>', 'port of the WebSocket (0 = any free port)', String(DEFAULT_FRONT_PORT))
    .option('--path <path>', 'path of the WebSocket', '/mqtt')
    .option('--tcp-port <n>', 'also take MQTT over plain TCP on this port, through the same checks and caps (0 = any free port; default: none)')
    .option('--tcp-host <addr>', 'interface of --tcp-port (default: --host)')
    .option('--trusted-proxy <addr>', "a TLS proxy on another host whose X-Forwarded-For names the WebSocket's caller, as loopback's does (repeatable)", collect, [])
    .option('--metrics-port <n>', 'serve /metrics, /healthz and /readyz on this port of --host (0 = any free port; default: none served)')
    .option('--public-name <name>', 'a name /metrics is reached by besides the addresses and localhost (repeatable)', collect, [])
    .option('--mqtt-max-connections-per-source <n>', `connections one IPv4 address or IPv6 /64 may hold open (default ${CAPS.perSource})`)
    .option('--mqtt-max-connections <n>', `connections all sources together may hold open (default ${CAPS.total}; keep max_connections of the broker's listener at least this)`)
    .option('--mqtt-max-packet <bytes>', `largest CONNECT, SUBSCRIBE or other packet but PUBLISH (default ${DEFAULT_PACKET_LIMITS.maxPacketBytes})`)
    .option('--verbose', 'debug logging (logs are JSON lines unless stderr is a terminal)')
    .addHelpText(
      'after',
      '\nA guard, not a broker: logins, ACLs and sessions are the broker\'s. Callers on loopback that no\n' +
        'proxy forwarded are exempt from the connection caps; behind a proxy on loopback (the shipped\n' +
        'nginx) or one --trusted-proxy names, a caller is the last X-Forwarded-For hop; over TCP, its\n' +
        'address. While the broker takes no connection, a WebSocket upgrade is answered 502, so a proxy\n' +
        'spreading /mqtt over several fronts tries the next.',
    );
}

interface FrontFlags {
  broker: string;
  host: string;
  port: string;
  path: string;
  tcpPort?: string;
  tcpHost?: string;
  trustedProxy: string[];
  metricsPort?: string;
  publicName: string[];
  mqttMaxConnectionsPerSource?: string;
  mqttMaxConnections?: string;
  mqttMaxPacket?: string;
  verbose?: boolean;
}

export async function run(argv: string[]): Promise<number> {
  const { options: flags } = parseCommand<FrontFlags>(command(), argv);
  if (!/^mqtt:\/\/[^/?#]+$/.test(flags.broker)) throw new CliError(`--broker must be the broker's TCP listener as mqtt://host:port, got "${flags.broker}"`);
  if (!/^\/[A-Za-z0-9._~/-]*$/.test(flags.path)) throw new CliError(`--path must be a URL path such as /mqtt, got "${flags.path}"`);
  const port = portOption(flags.port, 'port', DEFAULT_FRONT_PORT);
  const tcpPort = flags.tcpPort === undefined ? undefined : portOption(flags.tcpPort, 'tcp-port', 0);
  const badProxy = flags.trustedProxy.find((a) => isIP(a) === 0);
  if (badProxy !== undefined) throw new CliError(`--trusted-proxy must be an IP address, got "${badProxy}"`);
  const metricsPort = flags.metricsPort === undefined ? undefined : portOption(flags.metricsPort, 'metrics-port', 0);
  const limits = {
    maxConnectionsPerSource: intOption(flags.mqttMaxConnectionsPerSource, 'mqtt-max-connections-per-source', CAPS.perSource, 1),
    maxConnections: intOption(flags.mqttMaxConnections, 'mqtt-max-connections', CAPS.total, 1),
    // Below 256 bytes a login with a long password would not fit.
    maxPacketBytes: intOption(flags.mqttMaxPacket, 'mqtt-max-packet', DEFAULT_PACKET_LIMITS.maxPacketBytes, 256),
  };
  const metricsPassword = process.env.DPOW_METRICS_PASSWORD || undefined;
  delete process.env.DPOW_METRICS_PASSWORD;
  const log = createLogger({ verbose: flags.verbose, secrets: [metricsPassword ?? ''] });

  let front: MqttFront | undefined;
  let metrics: MetricsServer | undefined;
  const close = async () => {
    await metrics?.close();
    await front?.close();
  };
  try {
    front = await MqttFront.start({
      broker: flags.broker, host: flags.host, port, path: flags.path, tcpPort, tcpHost: flags.tcpHost, trustedProxies: flags.trustedProxy, limits, log,
    });
    if (metricsPort !== undefined) {
      const operatorPasswordHash = metricsPassword === undefined ? undefined : await hashApiKey(metricsPassword);
      metrics = await MetricsServer.start({ host: flags.host, port: metricsPort, publicNames: flags.publicName, front, access: 'loopback', operatorPasswordHash, log });
    }
  } catch (err) {
    await close();
    const e = err as NodeJS.ErrnoException;
    if (e.code === 'EADDRINUSE') {
      // The front listens on --port, then --tcp-port; the metrics server after both.
      const tcpTaken = !front && tcpPort !== undefined && (e as { port?: number }).port === tcpPort && tcpPort !== port;
      const [taken, option, host] = front ? [metricsPort, '--metrics-port', flags.host] : tcpTaken ? [tcpPort, '--tcp-port', flags.tcpHost ?? flags.host] : [port, '--port', flags.host];
      const hint = !front && !tcpTaken && port === DEFAULT_FRONT_PORT ? " (Mosquitto's old WebSocket listener? deploy/mosquitto/mosquitto.conf no longer has one)" : '';
      throw new CliError(`port ${taken} on ${host} is already in use${hint}; try ${option}`);
    }
    if (/^the broker must be/.test(e.message)) throw new CliError(e.message);
    process.stderr.write(`dpow-web mqtt-front: ${e.message}\n`);
    return 1;
  }
  const served = metrics ? `  (/metrics, /healthz, /readyz at ${metrics.url})` : '';
  const entries = front.tcpUrl ? `${front.url} and ${front.tcpUrl}` : front.url;
  process.stdout.write(`dpow-web mqtt-front is running at ${entries} for ${flags.broker}${served}\n`);

  return await new Promise<number>((resolve) => {
    const stop = (signal: NodeJS.Signals) => {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
      log.info(`${signal}: shutting down`);
      void close().then(() => resolve(0));
    };
    process.on('SIGINT', stop);
    process.on('SIGTERM', stop);
  });
}
