/** `--feed` values: a real node's WebSocket, or a built-in simulated node for demos. */
export type FeedSpec = { kind: 'qlc-sim' } | { kind: 'nano-sim' } | { kind: 'qlc'; url: string } | { kind: 'nano'; url: string };

/** Parses `qlc-sim`, `nano-sim`, `qlc:<ws-url>` or `nano:<ws-url>`; throws an Error saying why not. */
export function parseFeedSpec(text: string): FeedSpec {
  if (text === 'qlc-sim' || text === 'nano-sim') return { kind: text };
  const m = /^(qlc|nano):(wss?:\/\/.+)$/.exec(text);
  if (m) {
    try {
      new URL(m[2]);
    } catch {
      throw new Error(`feed URL "${m[2]}" is not a URL`);
    }
    return { kind: m[1] as 'qlc' | 'nano', url: m[2] };
  }
  throw new Error(`--feed must be qlc-sim, nano-sim, qlc:ws://host:port or nano:ws://host:port, got "${text}"`);
}
