/** Test helper, never imported by the product: real (and deliberately failing) work by brute force. */
import { randomBytes } from 'node:crypto';
import { toU64Hex, workValue } from '../pow/work.ts';

/** A random 64-hex root, upper-case as the DPoW server sends it. */
export const randomRoot = (): string => randomBytes(32).toString('hex').toUpperCase();

function search(root: string, accept: (value: bigint) => boolean): string {
  let nonce = randomBytes(8).readBigUInt64BE();
  for (;;) {
    const work = toU64Hex(nonce);
    if (accept(workValue(root, work))) return work;
    nonce = (nonce + 1n) & 0xffffffffffffffffn;
  }
}

/** Work whose value reaches `difficulty` under the reference rule (use low test difficulties). */
export function findWork(root: string, difficulty: bigint): string {
  return search(root, (value) => value >= difficulty);
}

/** Work whose value does NOT reach `difficulty`: a well-formed but invalid result. */
export function findBadWork(root: string, difficulty: bigint): string {
  return search(root, (value) => value < difficulty);
}
