/**
 * The three browser engines volunteers use, for the engine specs and `npm run bench`: each
 * driven through the standard protocol it speaks on Debian, behind one small page interface.
 * Playwright cannot drive Debian's Firefox or WebKit (it needs its own patched builds), so:
 *
 *   - chromium: Debian's Chromium through puppeteer-core (CDP), --enable-unsafe-webgpu (SwiftShader);
 *   - firefox:  Debian's firefox-esr, headless, through puppeteer-core over WebDriver BiDi, with the
 *               prefs that offer its WebGPU on Linux (a fallback adapter here; naga compiles WGSL);
 *   - webkit:   WebKitGTK's MiniBrowser through WebKitWebDriver (classic WebDriver only, through
 *               webdriverio) on an Xvfb display of its own: MiniBrowser has no headless mode.
 *
 * Each launch is one browser with one page that scenarios reuse, so a spec file pays the start-up
 * once. Paths are overridable: DPOW_CHROMIUM, DPOW_FIREFOX, DPOW_MINIBROWSER.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import puppeteer, { type Browser as PuppeteerBrowser, type Page as PuppeteerPage } from 'puppeteer-core';
import { remote } from 'webdriverio';
import { chromiumArgs, chromiumPath } from '../playwright.config.ts';
import { freePort } from '../src/testkit/net.ts';
import { waitForAsync } from '../src/testkit/wait.ts';

export type EngineName = 'chromium' | 'firefox' | 'webkit';
export const ENGINES: readonly EngineName[] = ['chromium', 'firefox', 'webkit'];

/** Launching, loading and driver round trips: generous, for a loaded 2-core machine. */
const LAUNCH_TIMEOUT_MS = 120_000;
const NAVIGATION_TIMEOUT_MS = 90_000;
/** How long one script in the page may run (the waits below run in the page). */
const SCRIPT_TIMEOUT_MS = 300_000;

export const FIREFOX_PREFS = { 'dom.webgpu.enabled': true, 'gfx.webgpu.ignore-blocklist': true };

export interface EnginePage {
  goto(url: string): Promise<void>;
  /**
   * Runs `fn` in the page with JSON arguments and resolves with its (awaited) JSON result. `fn`
   * crosses as its source text: it may use only its arguments and the page's globals.
   */
  evaluate<A extends unknown[], R>(fn: (...args: A) => R | Promise<R>, ...args: A): Promise<Awaited<R>>;
  /** Replaces the text of the field `selector` names by typing `text`, key by key. */
  type(selector: string, text: string): Promise<void>;
  click(selector: string): Promise<void>;
}

export interface EngineBrowser {
  readonly engine: EngineName;
  /** The browser's own version string (e.g. "firefox/153.8.0", "2.50.6"). */
  readonly version: string;
  readonly page: EnginePage;
  close(): Promise<void>;
}

/**
 * A script that runs `fn(...args)` and hands back its value; the caller awaits a promise. Under tsx
 * (npm run bench) esbuild's keepNames wraps functions in `__name(...)` calls, a helper the page
 * lacks: the script brings a do-nothing one.
 */
function call(fn: (...args: never[]) => unknown, args: unknown[]): string {
  const call = `(${fn.toString()})(${args.map((a) => JSON.stringify(a)).join(', ')})`;
  return `(() => { const __name = (target) => target; return ${call}; })()`;
}

function puppeteerPage(page: PuppeteerPage): EnginePage {
  page.setDefaultTimeout(NAVIGATION_TIMEOUT_MS);
  return {
    async goto(url) {
      await page.goto(url, { waitUntil: 'load', timeout: NAVIGATION_TIMEOUT_MS });
    },
    evaluate: (fn, ...args) => page.evaluate(call(fn as (...a: never[]) => unknown, args)) as never,
    async type(selector, text) {
      const field = await page.waitForSelector(selector);
      // Select what is there, so the first key press replaces it.
      await field!.click({ count: 3 });
      await field!.type(text);
      await field!.dispose();
    },
    async click(selector) {
      await page.locator(selector).click();
    },
  };
}

async function launchPuppeteer(engine: 'chromium' | 'firefox'): Promise<EngineBrowser> {
  const browser: PuppeteerBrowser =
    engine === 'firefox'
      ? await puppeteer.launch({
          browser: 'firefox',
          executablePath: process.env.DPOW_FIREFOX ?? '/usr/bin/firefox-esr',
          headless: true,
          extraPrefsFirefox: FIREFOX_PREFS,
          timeout: LAUNCH_TIMEOUT_MS,
          protocolTimeout: SCRIPT_TIMEOUT_MS,
        })
      : await puppeteer.launch({
          browser: 'chrome',
          executablePath: chromiumPath,
          headless: true,
          // As Playwright launches it (CI runs as root, where the sandbox refuses to start).
          args: [...chromiumArgs, '--no-sandbox'],
          timeout: LAUNCH_TIMEOUT_MS,
          protocolTimeout: SCRIPT_TIMEOUT_MS,
        });
  try {
    const [first] = await browser.pages();
    const page = first ?? (await browser.newPage());
    return {
      engine,
      version: await browser.version(),
      page: puppeteerPage(page),
      close: () => browser.close(),
    };
  } catch (err) {
    await browser.close();
    throw err;
  }
}

/** WebKitGTK's MiniBrowser: DPOW_MINIBROWSER, or where Debian's webkit2gtk package puts it. */
export function miniBrowserPath(): string {
  if (process.env.DPOW_MINIBROWSER) return process.env.DPOW_MINIBROWSER;
  for (const arch of existsSync('/usr/lib') ? readdirSync('/usr/lib') : []) {
    for (const api of ['webkit2gtk-4.1', 'webkit2gtk-4.0', 'webkitgtk-6.0']) {
      const path = `/usr/lib/${arch}/${api}/MiniBrowser`;
      if (existsSync(path)) return path;
    }
  }
  throw new Error('no WebKitGTK MiniBrowser found: install webkit2gtk-driver, or set DPOW_MINIBROWSER');
}

/** Resolves when the child exits (at once if it already has). */
function exited(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve();
  return new Promise((resolve) => child.once('exit', () => resolve()));
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
  await exited(child);
}

/**
 * An Xvfb server on a display it picks itself (-displayfd writes the number once it listens), so
 * parallel runs never race for one, as `xvfb-run -a` can.
 */
async function startXvfb(): Promise<{ display: string; process: ChildProcess }> {
  const xvfb = spawn('Xvfb', ['-displayfd', '3', '-screen', '0', '1280x1024x24', '-nolisten', 'tcp'], {
    stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  xvfb.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const display = await new Promise<string>((resolve, reject) => {
    let out = '';
    xvfb.stdio[3]!.on('data', (chunk: Buffer) => {
      out += chunk.toString();
      if (out.includes('\n')) resolve(`:${out.trim()}`);
    });
    xvfb.once('error', (err) => reject(new Error(`Xvfb did not start (${err.message}): install xvfb`)));
    xvfb.once('exit', (code) => reject(new Error(`Xvfb exited with ${code}: ${stderr.trim().slice(-300)}`)));
  });
  return { display, process: xvfb };
}

async function launchWebKit(): Promise<EngineBrowser> {
  const binary = miniBrowserPath();
  const xvfb = await startXvfb();
  const port = await freePort();
  const driver = spawn('WebKitWebDriver', [`--port=${port}`, '--host=127.0.0.1'], {
    env: { ...process.env, DISPLAY: xvfb.display },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let driverLog = '';
  driver.stderr!.on('data', (chunk: Buffer) => (driverLog = (driverLog + chunk.toString()).slice(-2000)));
  const stopAll = async () => {
    await stop(driver);
    await stop(xvfb.process);
  };
  try {
    const spawnFailed = new Promise<never>((_, reject) =>
      driver.once('error', (err) => reject(new Error(`WebKitWebDriver did not start (${err.message}): install webkit2gtk-driver`))),
    );
    await Promise.race([
      spawnFailed,
      waitForAsync(
        'WebKitWebDriver to answer /status',
        () => fetch(`http://127.0.0.1:${port}/status`).then((r) => r.ok, () => false),
        LAUNCH_TIMEOUT_MS,
      ),
    ]);
    const browser = await remote({
      hostname: '127.0.0.1',
      port,
      path: '/',
      logLevel: 'warn',
      // Every request, the long in-page waits (execute) included, must outlast the script timeout.
      connectionRetryTimeout: SCRIPT_TIMEOUT_MS + LAUNCH_TIMEOUT_MS,
      connectionRetryCount: 1,
      capabilities: {
        // No BiDi in WebKitWebDriver: webdriverio must not ask for a webSocketUrl.
        browserName: 'MiniBrowser',
        'wdio:enforceWebDriverClassic': true,
        'webkitgtk:browserOptions': { binary, args: ['--automation'] },
      } as WebdriverIO.Capabilities,
    });
    await browser.setTimeout({ script: SCRIPT_TIMEOUT_MS, pageLoad: NAVIGATION_TIMEOUT_MS });
    const run = <R>(script: string) => browser.execute(`return ${script}`) as Promise<R>;
    const page: EnginePage = {
      async goto(url) {
        await browser.url(url);
      },
      evaluate: (fn, ...args) => run(call(fn as (...a: never[]) => unknown, args)),
      async type(selector, text) {
        const field = await browser.$(selector);
        await field.waitForClickable({ timeout: NAVIGATION_TIMEOUT_MS });
        await field.click();
        // Element Clear empties the field without an input event, so a page that renders the
        // field from its own state puts the old text back: select it and delete it as a user
        // would. (browser.keys presses its keys together: it cannot type "99".)
        await browser.execute((element: HTMLInputElement) => element.select(), field as unknown as HTMLInputElement);
        await browser.keys('Backspace');
        await field.addValue(text);
      },
      async click(selector) {
        const element = await browser.$(selector);
        await element.waitForClickable({ timeout: NAVIGATION_TIMEOUT_MS });
        await element.click();
      },
    };
    return {
      engine: 'webkit',
      version: String(browser.capabilities.browserVersion ?? 'unknown'),
      page,
      async close() {
        await browser.deleteSession().catch(() => undefined);
        await stopAll();
      },
    };
  } catch (err) {
    await stopAll();
    throw new Error(`WebKit did not start: ${(err as Error).message}\n${driverLog}`);
  }
}

export function launchEngine(engine: EngineName): Promise<EngineBrowser> {
  return engine === 'webkit' ? launchWebKit() : launchPuppeteer(engine);
}

/** What waitForValue reads from the element: its text, an attribute, or a DOM property. */
export type Reading = { text: true } | { attribute: string } | { property: string };

/**
 * Resolves with what `read` gives for the element `selector` names once it matches `pattern`,
 * waiting in the page on DOM mutations (no polling from here); rejects after `timeoutMs` with what
 * it last read. A missing element reads as null and never matches.
 */
export function waitForValue(
  page: EnginePage,
  selector: string,
  pattern: RegExp,
  { read = { text: true }, timeoutMs = 120_000 }: { read?: Reading; timeoutMs?: number } = {},
): Promise<string> {
  return page.evaluate(
    (selector, source, flags, read, timeoutMs) =>
      new Promise<string>((resolve, reject) => {
        const value = (): string | null => {
          const element = document.querySelector(selector);
          if (!element) return null;
          if ('attribute' in read) return element.getAttribute(read.attribute);
          if ('property' in read) return String((element as unknown as Record<string, unknown>)[read.property]);
          return element.textContent;
        };
        const pattern = new RegExp(source, flags);
        const observer = new MutationObserver(() => check());
        const timer = setTimeout(() => {
          observer.disconnect();
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${selector} to match ${pattern}; it reads ${JSON.stringify(value())}`));
        }, timeoutMs);
        function check(): boolean {
          const current = value();
          if (current === null || !pattern.test(current)) return false;
          observer.disconnect();
          clearTimeout(timer);
          resolve(current);
          return true;
        }
        if (!check()) observer.observe(document, { subtree: true, childList: true, characterData: true, attributes: true });
      }),
    selector,
    pattern.source,
    pattern.flags,
    read,
    timeoutMs,
  );
}
