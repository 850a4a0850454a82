/**
 * What a Nano node's WebSocket `confirmation` topic carries, as types (protocol-notes §4): the one
 * description both the feed (nano-feed.ts, which checks every message against it) and the
 * simulated node (sim/nano-sim.ts, which makes them up) hold to.
 */
export interface NanoStateBlock {
  type: string;
  account: string;
  previous: string;
  representative: string;
  balance: string;
  link: string;
  link_as_account?: string;
  work?: string;
  signature?: string;
  subtype?: string;
}

export interface NanoConfirmation {
  account: string;
  amount: string;
  /** 64 upper-case hex, as the node prints it. */
  hash: string;
  confirmationType: string;
  block: NanoStateBlock;
  /** The node's time, ms since epoch (as a string on the wire). */
  time: string;
}
