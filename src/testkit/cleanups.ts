/** Test helper, never imported by the product: teardown that runs after every test. */
import { afterEach } from 'vitest';

/**
 * A stack of teardown steps for the calling test file: push a close() as each resource opens, and
 * after every test they run newest first, each awaited.
 */
export function cleanupsAfterEach(): (() => unknown)[] {
  const cleanups: (() => unknown)[] = [];
  afterEach(async () => {
    while (cleanups.length) await cleanups.pop()!();
  });
  return cleanups;
}

/**
 * Puts `resource.close()` on `cleanups` and hands the resource back, so opening and closing it
 * stay one line: `const sim = closeAfter(cleanups, await QlcSim.start())`.
 */
export function closeAfter<T extends { close(): unknown }>(cleanups: (() => unknown)[], resource: T): T {
  cleanups.push(() => resource.close());
  return resource;
}
