/** Test helper, never imported by the product: addresses that are well formed but invalid. */

/** The address with its last character changed: still the right shape, but the checksum fails. */
export function breakChecksum(address: string): string {
  return address.slice(0, -1) + (address.endsWith('1') ? '3' : '1');
}
