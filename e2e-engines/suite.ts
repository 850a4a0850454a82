/**
 * What every engine must do, as one suite each engine's spec file runs in one browser (launched
 * once, reused by every scenario): the volunteer's journey against the real broker and dispatcher,
 * the kiosk URL, the engine lab on every backend the engine offers, the kernel tuner's cache, and
 * every member of the WGSL kernel family compiled by the engine's own shader compiler. All work is
 * judged in Node with the reference rule. Needs a build (dist/, served by the app server).
 */
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadBenchSources } from '../src/pow-node/gpu.ts';
import { KERNEL_FAMILY_VERSION, KERNEL_VARIANTS, YARDSTICK_VARIANT } from '../src/pow/kernel-family.ts';
import { toU64Hex, validateWork, workValue } from '../src/pow/work.ts';
import type { SupportNoteId } from '../src/app/browser-support.ts';
import { breakChecksum } from '../src/testkit/address.ts';
import { randomRoot } from '../src/testkit/work.ts';
import { randomAddress, startStack, TEST_DIFFICULTY, type Stack } from '../e2e/stack.ts';
import { parseTuningCache, readTuningCache, type StoredTuning } from '../e2e/tuning-cache.ts';
import { launchEngine, waitForValue, type EngineBrowser, type EngineName, type EnginePage } from './browsers.ts';
import { runVariant, serveKernelCheck, type KernelCheckServer } from './kernel-check.ts';

export interface EngineExpectations {
  engine: EngineName;
  /** The shader compiler behind the engine's WebGPU, for test names. */
  shaderCompiler: string;
  /** The engine lab's backends the engine offers here; asking for another fails with a reason. */
  backends: readonly ('webgpu' | 'wasm')[];
  /** The notes the page shows about parts this browser lacks, on the page and in a kiosk. */
  notes: { page: readonly SupportNoteId[]; kiosk: readonly SupportNoteId[] };
}

/** About 4096 hashes: a few dispatches or WASM slices on any backend. */
const EASY = 'fff0000000000000';
const vectors = JSON.parse(readFileSync(new URL('../test/vectors/nano-work.json', import.meta.url), 'utf8')) as {
  valid: { root: string; work: string; value: string }[];
};

const byTestId = (id: string) => `[data-testid="${id}"]`;

/**
 * Goes to `url`, first ending the engine of the lab page showing now, if it is one: its GPU device
 * and threads are released by the engine itself, so a scenario leaves no GPU work behind for the
 * next. Waits at most 5 s for the engine to answer.
 */
async function leaveFor(page: EnginePage, url: string): Promise<void> {
  await page
    .evaluate(async () => {
      const engine = (window as unknown as { __engine?: { dispose(): Promise<void> } }).__engine;
      if (engine) await Promise.race([engine.dispose(), new Promise((resolve) => setTimeout(resolve, 5000))]);
    })
    .catch(() => undefined); // no page yet, or one from another origin
  await page.goto(url);
}

/** A page on `url` with nothing kept from earlier scenarios (settings, "was working", tuning). */
async function openFresh(page: EnginePage, stack: Stack, url: string): Promise<void> {
  // The lab page is on the same origin and starts no work, unlike the app with a saved address.
  await leaveFor(page, `${stack.url}bench.html`);
  await page.evaluate(() => {
    localStorage.clear();
    sessionStorage.clear();
  });
  await page.goto(url);
}

/** The support notes the page shows, by id. */
function shownNotes(page: EnginePage): Promise<string[]> {
  return page.evaluate(() => Array.from(document.querySelectorAll<HTMLElement>('[data-note]'), (n) => n.dataset.note ?? ''));
}

/** Asks the dispatcher for `count` on-demand works at once and checks every answer. */
async function requestValidatedWork(stack: Stack, count: number): Promise<void> {
  const answers = await Promise.all(Array.from({ length: count }, () => stack.requestWork()));
  for (const answer of answers) {
    expect(validateWork(answer.hash, answer.work, TEST_DIFFICULTY).valid, `work ${answer.work} for ${answer.hash}`).toBe(true);
  }
}

async function creditedOndemand(stack: Stack, address: string): Promise<number> {
  return (await stack.app.store.getClient(address))?.ondemand ?? 0;
}

/** The engine lab after one Compute of an easy job on `backend`; the result judged here. */
async function labCompute(page: EnginePage, stack: Stack, backend: string): Promise<{ backend: string; kernelState: string }> {
  const root = randomRoot();
  await leaveFor(page, `${stack.url}bench.html?${new URLSearchParams({ backend, threads: '2', root, difficulty: EASY })}`);
  await waitForValue(page, byTestId('state'), /^idle$/);
  await page.click(byTestId('compute'));
  // An easy job takes well under a second; a minute is a hang or a starved machine.
  const state = await waitForValue(page, byTestId('state'), /^(done|error)$/, { timeoutMs: 60_000 }).catch(async (error: Error) => {
    // Still running: say where the engine is (backend, hashes counted, phase), so a hang can be told from a slow search.
    const { answered, said } = await engineStatus(page);
    const message = `${error.message}; the engine says ${said}`;
    throw answered ? new Error(message) : new EngineUnanswered(message);
  });
  const read = (id: string) => page.evaluate((selector) => document.querySelector(selector)?.textContent ?? '', byTestId(id));
  expect(state, await read('error')).toBe('done');
  const work = await read('work');
  expect(validateWork(root, work, EASY).valid, `work ${work} for ${root}`).toBe(true);
  expect(await read('verified')).toBe('valid');
  expect(await read('kernel-mismatches')).toBe('0');
  const result = { backend: await read('result-backend'), kernelState: await read('result-kernel-state') };
  if (result.backend === 'webgpu') {
    // The first WebGPU search starts the tuner's calibration in the background. Leaving the page
    // mid-calibration would leave its dispatches queued in the browser's GPU process (lavapipe
    // runs them on the CPU) under the next scenario: it starts once the calibration is over.
    await waitForValue(page, byTestId('kernel-state'), /^(cached|tuned|forced|default)$/);
  }
  return result;
}

/** The lab's engine worker stopped answering: its thread is stuck (see the suite's lab scenarios). */
class EngineUnanswered extends Error {}

/**
 * What the lab's engine says (its status through its test handle, window.__engine, within 5 s),
 * with what the page knows besides: a worker failure, the service worker, the worker scripts and
 * kernels fetched and when each finished.
 */
function engineStatus(page: EnginePage): Promise<{ answered: boolean; said: string }> {
  return page
    .evaluate(async () => {
      const engine = (window as unknown as { __engine?: { status(): Promise<unknown> } }).__engine;
      if (!engine) return { answered: false, said: 'nothing: the page has no engine handle' };
      const status = await Promise.race([engine.status(), new Promise<null>((resolve) => setTimeout(() => resolve(null), 5000))]);
      const fetched = performance
        .getEntriesByType('resource')
        .filter((e) => /worker|\.wasm|\.wgsl/.test(e.name))
        .map((e) => `${new URL(e.name).pathname} at ${Math.round(e.startTime)}-${Math.round((e as PerformanceResourceTiming).responseEnd)} ms`);
      const controller = navigator.serviceWorker?.controller?.state ?? 'none';
      const failure = (window as unknown as { __engineFailure?: () => string | null }).__engineFailure?.() ?? 'none';
      const said = status === null
        ? `no answer within 5 s (the page's kernel state reads ${document.querySelector('[data-testid="kernel-state"]')?.textContent ?? 'nothing'})`
        : JSON.stringify(status, (_, v: unknown) => (typeof v === 'bigint' ? v.toString() : v));
      return { answered: status !== null, said: `${said}; worker failure ${failure}; service worker ${controller}; fetched ${fetched.join(', ') || 'nothing'}` };
    })
    .catch((error: Error) => ({ answered: true, said: `nothing readable (${error.message})` }));
}

/** Every entry of the page's tuning cache. */
async function storedTunings(page: EnginePage): Promise<StoredTuning[]> {
  return parseTuningCache(await page.evaluate(readTuningCache));
}

/** The adapter the page's own requestAdapter() gives, as the tuner keys it. */
function pageAdapter(page: EnginePage) {
  return page.evaluate(async () => {
    const adapter = await (navigator as Navigator & { gpu?: GPU }).gpu?.requestAdapter({ powerPreference: 'high-performance' });
    if (!adapter) return null;
    const { vendor, architecture, device, description, isFallbackAdapter } = adapter.info;
    return { vendor, architecture, device, description, isFallbackAdapter };
  });
}

export function engineSuite(expected: EngineExpectations): void {
  const { engine } = expected;
  const offersWebGpu = expected.backends.includes('webgpu');
  let browser: EngineBrowser;
  let stack: Stack;
  let page: EnginePage;

  /**
   * Runs a lab scenario, and once more in a new browser if the lab's engine worker stopped
   * answering. Firefox ESR left an engine worker's thread stuck (no status within 5 s, its script
   * loaded, no worker error) after other pages' GPU devices, beside a busy core: a browser hang
   * this suite cannot mend, reported as a warning with what the engine said. A second hang fails.
   */
  async function retryInNewBrowserOnHang(body: () => Promise<void>): Promise<void> {
    try {
      await body();
    } catch (error) {
      if (!(error instanceof EngineUnanswered)) throw error;
      console.warn(`${engine}: the lab's engine stopped answering; once more in a new browser. ${error.message}`);
      await relaunch();
      await body();
    }
  }

  /** The same engine again, a new browser with a new profile: no GPU device used yet. */
  async function relaunch(): Promise<void> {
    await browser.close();
    browser = await launchEngine(engine);
    page = browser.page;
  }

  beforeAll(async () => {
    [browser, stack] = await Promise.all([launchEngine(engine), startStack()]);
    page = browser.page;
    console.info(`${engine}: ${browser.version}`);
  });

  afterAll(async () => {
    await browser?.close();
    await stack?.close();
  });

  it('the page opens and notes what this browser lacks', async () => {
    await openFresh(page, stack, stack.url);
    // The onboarding form rendered: nothing the browser lacks stopped the page's start.
    await waitForValue(page, '#address-help', /Accepted prefixes/);
    if (!expected.notes.page.includes('service-worker')) {
      // Registration ends after the start: once the worker is active, no late note can come.
      await page.evaluate(async () => void (await navigator.serviceWorker.ready));
    }
    expect(await shownNotes(page)).toEqual(expected.notes.page);
  });

  it("plans WASM threads from the cores that run at once, not from the browser's bare claim", async () => {
    await openFresh(page, stack, stack.url);
    await waitForValue(page, '#address-help', /Accepted prefixes/);
    const { claimed, threads } = await page.evaluate(() => ({
      claimed: navigator.hardwareConcurrency,
      threads: (window as unknown as { dpowApp: { defaults: { threads: number } } }).dpowApp.defaults.threads,
    }));
    expect(threads).toBeGreaterThanOrEqual(1);
    // WebKit claims 4 on a 2-core machine: all cores but one must not become 3 threads there.
    if (claimed > availableParallelism()) expect(threads).toBeLessThan(claimed - 1);
    else expect(threads).toBeLessThanOrEqual(Math.max(1, claimed - 1));
  });

  it('the volunteer journey: a mistyped address is refused, a good one starts, 3 results are accepted, Stop stops', async () => {
    const address = randomAddress();
    await openFresh(page, stack, stack.url);
    const submit = 'form.settings button[type="submit"]';
    await waitForValue(page, submit, /^true$/, { read: { property: 'disabled' } });

    await page.type('#address', breakChecksum(address));
    await waitForValue(page, '#address-help', /checksum does not match/i);
    await waitForValue(page, '#address', /^true$/, { read: { attribute: 'aria-invalid' } });
    await waitForValue(page, submit, /^true$/, { read: { property: 'disabled' } });

    await page.type('#address', address);
    await waitForValue(page, '#address-help', /^Valid address, checksum verified\.$/);
    await waitForValue(page, submit, /^false$/, { read: { property: 'disabled' } });
    await page.click(submit);
    await waitForValue(page, byTestId('connection-state'), /Online/);

    await requestValidatedWork(stack, 3);
    await waitForValue(page, byTestId('count-accepted'), /^3$/);
    expect(await creditedOndemand(stack, address)).toBe(3);

    await page.click(byTestId('stop'));
    await waitForValue(page, byTestId('connection-state'), /^Stopped$/);
  });

  it('the kiosk URL starts with no clicks and its address is credited', async () => {
    const address = randomAddress();
    await openFresh(page, stack, `${stack.url}?kiosk=1&autostart=1&work=ondemand&address=${address}`);
    // The kiosk's big word says what the worker does; connected, it waits for work or works.
    await waitForValue(page, `${byTestId('kiosk')} ${byTestId('kiosk-state')}`, /^(Waiting for work|Working)$/);
    expect(await page.evaluate(() => document.querySelectorAll('button').length)).toBe(0);
    expect(await shownNotes(page)).toEqual(expected.notes.kiosk);

    await requestValidatedWork(stack, 2);
    await waitForValue(page, `${byTestId('kiosk')} ${byTestId('count-accepted')}`, /^2$/);
    expect(await creditedOndemand(stack, address)).toBe(2);
    // Nothing to stop it with: leaving the page does (the next scenario opens another).
  });

  for (const backend of expected.backends) {
    it(`the engine lab computes validated work on ${backend}`, () =>
      retryInNewBrowserOnHang(async () => {
        await openFresh(page, stack, `${stack.url}bench.html`);
        // The page is not cross-origin isolated, so no engine gives it SharedArrayBuffer: the WASM
        // threads must work without it, and this keeps them tested so.
        expect(await page.evaluate(() => ({ isolated: crossOriginIsolated, sharedMemory: typeof SharedArrayBuffer }))).toEqual({
          isolated: false,
          sharedMemory: 'undefined',
        });
        expect((await labCompute(page, stack, backend)).backend).toBe(backend);
      }),
    );
  }

  if (!offersWebGpu) {
    it('the engine lab refuses WebGPU with the reason when the engine has none', async () => {
      await openFresh(page, stack, `${stack.url}bench.html?backend=webgpu&difficulty=${EASY}`);
      await waitForValue(page, byTestId('state'), /^idle$/);
      await page.click(byTestId('compute'));
      await waitForValue(page, byTestId('state'), /^error$/);
      await waitForValue(page, byTestId('error'), /WebGPU is not available/);
    });
  }

  it('Auto computes on WebGPU only with a hardware adapter, otherwise on WASM', async () => {
    // Auto is decided on the engine's first use of the GPU, so it is checked as a volunteer's first
    // visit meets it: in a browser that has had no GPU device yet. (Firefox, after the WebGPU
    // scenarios' devices and beside a busy core, left this page's engine unanswered in 6 of 20
    // runs; in a new browser, in 1 of 6.)
    await relaunch();
    let backend = '';
    await retryInNewBrowserOnHang(async () => {
      await openFresh(page, stack, `${stack.url}bench.html`);
      ({ backend } = await labCompute(page, stack, 'auto'));
    });
    // Asked after the job, on the page that ran it: an adapter the page requested and then left
    // behind with its document was being torn down while the next page's engine asked for its own.
    const adapter = await pageAdapter(page);
    const hardware = adapter !== null && !adapter.isFallbackAdapter;
    expect(backend).toBe(hardware ? 'webgpu' : 'wasm');
  });

  // An engine without WebGPU here has the refusal test above instead.
  if (offersWebGpu) describe(`WebGPU kernels through ${expected.shaderCompiler}`, () => {
    it("the tuner calibrates on this adapter, keeps its choice under the adapter's key and reuses it after a reload", async () => {
      await openFresh(page, stack, `${stack.url}bench.html`);
      await page.evaluate(
        () =>
          new Promise<void>((resolve, reject) => {
            const request = indexedDB.deleteDatabase('dpow-web');
            request.onsuccess = () => resolve();
            request.onerror = () => reject(request.error);
          }),
      );
      const adapter = await pageAdapter(page);
      expect(adapter, 'the engine offers WebGPU, so the page gets an adapter').not.toBeNull();

      // The first WebGPU job starts the calibration and is not held up by it.
      expect((await labCompute(page, stack, 'webgpu')).kernelState).toBe('calibrating');
      await waitForValue(page, byTestId('kernel-state'), /^tuned$/, { timeoutMs: 240_000 });
      const [entry, ...others] = await storedTunings(page);
      expect(others).toEqual([]);
      const { isFallbackAdapter, ...named } = adapter!;
      expect(entry.key).toMatchObject({
        ...named,
        fallback: isFallbackAdapter,
        runtime: await page.evaluate(() => navigator.userAgent),
        family: KERNEL_FAMILY_VERSION,
      });
      expect(entry.table.map((r) => r.variant).sort()).toEqual(KERNEL_VARIANTS.map((v) => v.name).sort());
      expect(entry.table.every((r) => r.rate > 0)).toBe(true);
      await waitForValue(page, byTestId('kernel'), new RegExp(`^${entry.variant}$`), { read: { attribute: 'data-variant' } });

      // A reload is a new engine worker: it finds the choice instead of measuring again.
      expect(await labCompute(page, stack, 'webgpu')).toEqual({ backend: 'webgpu', kernelState: 'cached' });
      await waitForValue(page, byTestId('kernel'), new RegExp(`^${entry.variant}$`), { read: { attribute: 'data-variant' } });
      expect(await storedTunings(page)).toEqual([entry]);
    });

    describe('every member of the family compiles and matches the reference rule', () => {
      let server: KernelCheckServer;
      const shaders = loadBenchSources();

      beforeAll(async () => {
        server = await serveKernelCheck();
        await page.goto(server.url);
        await waitForValue(page, 'title', /^ready$/);
      });

      afterAll(async () => {
        await server?.close();
      });

      for (const variant of [...KERNEL_VARIANTS, YARDSTICK_VARIANT]) {
        it(`${variant.name}: compiles under ${expected.shaderCompiler}; known answers, nonces past 2^32 and 2^64, and found work pass`, async () => {
          const roots = [randomRoot(), randomRoot()];
          const values = [
            { root: roots[0], start: '00000000ffffff00', count: 512 }, // the carry into the high word
            { root: roots[1], start: 'ffffffffffffff00', count: 512 }, // wraps through 2^64
            ...vectors.valid.map((v) => ({ root: v.root, start: v.work, count: 1 })),
          ];
          const searches = [{ root: randomRoot(), difficulty: EASY, start: randomBytes(8).toString('hex') }];
          const result = await runVariant(page, { variant: variant.name, shaders, values, searches });

          values.forEach((job, i) => {
            const start = BigInt(`0x${job.start}`);
            const nonces = Array.from({ length: job.count }, (_, k) => toU64Hex((start + BigInt(k)) & 0xffffffffffffffffn));
            const reference = nonces.map((nonce) => toU64Hex(workValue(job.root, nonce)));
            expect(result.values[i], `${variant.name} ${job.root}`).toHaveLength(job.count);
            const wrong = result.values[i].findIndex((value, k) => value !== reference[k]);
            expect(
              wrong,
              wrong < 0 ? '' : `${variant.name}: nonce ${nonces[wrong]} of ${job.root} gave ${result.values[i][wrong]}, reference ${reference[wrong]}`,
            ).toBe(-1);
          });
          vectors.valid.forEach((v, i) => expect(result.values[2 + i][0], `${variant.name}: ${v.root}/${v.work}`).toBe(v.value.toLowerCase()));
          searches.forEach((job, i) => {
            const work = result.works[i];
            expect(work, `${variant.name} found no work for ${job.root}`).not.toBeNull();
            expect(validateWork(job.root, work!, job.difficulty).valid, `${variant.name}: work ${work} for ${job.root}`).toBe(true);
          });
        });
      }
    });
  });
}
