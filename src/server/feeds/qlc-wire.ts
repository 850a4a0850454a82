/**
 * What go-qlc sends on its ledger and pov subscriptions, as types: the one description both the
 * feed (qlc-feed.ts, which checks every notification against it) and the simulated node
 * (sim/qlc-sim.ts, which makes them up) hold to.
 */
export const QLC_BLOCK_TYPES = [
  'State',
  'Send',
  'Receive',
  'Change',
  'Open',
  'ContractSend',
  'ContractReward',
  'ContractRefund',
  'Online',
] as const;
export type QlcBlockType = (typeof QLC_BLOCK_TYPES)[number];

export const ZERO_HASH = '0'.repeat(64);

export interface QlcBlock {
  type: QlcBlockType;
  /** Token type hash (64 hex): a chain is (address, token). */
  token: string;
  address: string;
  previous: string;
  link: string;
  /** The block's own hash, when the node sent it (current nodes do). Lowercase as sent. */
  hash?: string;
  balance?: string;
  amount?: string;
  tokenName?: string;
  representative?: string;
  work?: string;
  timestamp?: number;
  povHeight?: number;
}

export interface QlcPending {
  source: string;
  amount: string;
  /** Token type hash. */
  type: string;
  tokenName?: string;
  /** The send block's hash. */
  hash: string;
  timestamp?: number;
}

export interface QlcAccountInfo {
  account: string;
  /** `coinBalance` in current nodes, `balance` in the docs. */
  balance?: string;
  tokens: { type: string; header: string; open?: string; balance?: string; blockCount?: number }[];
}

export interface QlcPovHeader {
  hash: string;
  previous: string;
  height: number;
}
