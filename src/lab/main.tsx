/**
 * The engine lab (bench.html): compute one proof of work or benchmark the backends in this
 * browser, with the same engine worker the app uses. `npm run bench` and e2e/engine.spec.ts drive
 * it through the data-testid hooks. Query parameters preselect the form:
 *   ?backend=auto|webgpu|wasm&threads=N&seconds=N&root=<64 hex>&difficulty=<16 hex>&kernel=<variant>
 * and, for the engine worker's start-up watchdog test (e2e/engine-watchdog.spec.ts):
 *   ?hangingWorkers=N  the first N engine workers never answer; ?answerWithinMs=N  the watchdog's deadline
 */
import { render } from 'preact';
import '../app/styles.css';
import './lab.css';
import { applyTheme, theme } from '../app/theme.ts';
import { formatCount, formatHashrate } from '../format.ts';
import { useEffect, useState } from 'preact/hooks';
import {
  BrowserEngine,
  defaultEngineWorker,
  type BrowserEngineOptions,
  type WorkerReplacement,
} from '../pow-browser/browser-engine.ts';
import { rememberedParallelism } from '../pow-browser/parallelism.ts';
import { defaultThreads, usableCores } from '../pow/threads.ts';
import {
  PowCancelledError,
  type BackendChoice,
  type BenchmarkResult,
  type EngineStatus,
  type GenerateResult,
} from '../pow/types.ts';
import {
  THRESHOLDS,
  fromMultiplier,
  isRootHex,
  isU64Hex,
  parseDifficulty,
  toMultiplier,
  toU64Hex,
  validateWork,
} from '../pow/work.ts';

const params = new URLSearchParams(location.search);

/** A real worker that takes every message and answers none: the Firefox ESR hang, on demand. */
function silentWorker(): Worker {
  const script = URL.createObjectURL(new Blob(['onmessage = () => {};'], { type: 'text/javascript' }));
  return new Worker(script, { name: 'pow-engine-silent' });
}

function engineOptions(): BrowserEngineOptions {
  const hanging = Number(params.get('hangingWorkers') ?? 0);
  const answerWithinMs = Number(params.get('answerWithinMs'));
  let started = 0;
  return {
    ...(hanging > 0 && {
      createWorker: () => (started++ < hanging ? silentWorker() : defaultEngineWorker()),
    }),
    ...(answerWithinMs > 0 && { answerWithinMs }),
  };
}

const browserEngine = new BrowserEngine(engineOptions());
// Test handles for the end-to-end tests (device loss, the engine suite); only this lab page sets them.
Object.defineProperty(window, '__engine', { get: () => browserEngine.engine });
(window as unknown as { __engineFailure: () => string | null }).__engineFailure = () => browserEngine.failure;

type Phase = 'starting' | 'idle' | 'running' | 'done' | 'cancelled' | 'error' | 'benchmarking' | 'benchmarked';

// ?kernel=<variant> pins a WebGPU kernel variant instead of the tuner's choice.
const pinnedKernel = params.get('kernel');
if (pinnedKernel) {
  void browserEngine
    .ready()
    .then(() => browserEngine.engine.setKernel(pinnedKernel))
    .catch((err: unknown) => console.error(String(err)));
}
const BACKENDS: BackendChoice[] = ['auto', 'webgpu', 'wasm'];
const initialBackend = BACKENDS.find((b) => b === params.get('backend')) ?? 'auto';
// What the app measured in this browser, if it has (the lab does not spend time measuring).
const threadsByDefault = defaultThreads(usableCores(navigator.hardwareConcurrency, rememberedParallelism(localStorage, navigator)));

function randomRoot(): string {
  return Array.from(crypto.getRandomValues(new Uint8Array(32)), (b) => b.toString(16).padStart(2, '0'))
    .join('')
    .toUpperCase();
}

applyTheme(theme.value);

/** The rate a finished job achieved: its hashes over its time. */
const achieved = (found: Found) => (found.ms > 0 ? (found.hashes * 1000) / found.ms : 0);

function multiplierOf(difficulty: string): string {
  return isU64Hex(difficulty) ? String(Number(toMultiplier(parseDifficulty(difficulty)).toPrecision(6))) : '';
}

interface Found extends GenerateResult {
  root: string;
  difficulty: string;
  /** The page's own reference check of the returned work. */
  verified: boolean;
  /** The kernel tuner's state when the result came back (a job during calibration: 'calibrating'). */
  kernelState: string | null;
}

function Lab() {
  const [root, setRoot] = useState(() => params.get('root') ?? randomRoot());
  const [difficulty, setDifficulty] = useState(() => params.get('difficulty') ?? toU64Hex(THRESHOLDS.nanoReceive));
  const [multiplier, setMultiplier] = useState(() => multiplierOf(difficulty));
  const [backend, setBackend] = useState<BackendChoice>(initialBackend);
  const [threads, setThreads] = useState(params.get('threads') ?? String(threadsByDefault));
  const [seconds, setSeconds] = useState(params.get('seconds') ?? '5');
  const [phase, setPhase] = useState<Phase>('starting');
  const [error, setError] = useState('');
  const [found, setFound] = useState<Found | null>(null);
  const [bench, setBench] = useState<BenchmarkResult[] | null>(null);
  const [status, setStatus] = useState<EngineStatus | null>(null);
  const [replacements, setReplacements] = useState<WorkerReplacement[]>([]);

  useEffect(() => {
    const unsubscribe = browserEngine.onReplacement((r) => setReplacements((all) => [...all, r]));
    browserEngine.ready().then(
      () => {
        setPhase('idle');
        void browserEngine.onStatus((s) => setStatus(s));
      },
      (err: unknown) => {
        setPhase('error');
        setError((err as Error).message ?? String(err));
      },
    );
    return unsubscribe;
  }, []);

  const busy = phase === 'starting' || phase === 'running' || phase === 'benchmarking';
  const threadCount = Number(threads);
  const threadsValid = Number.isInteger(threadCount) && threadCount >= 1 && threadCount <= 64;

  const onMultiplier = (text: string) => {
    setMultiplier(text);
    const m = Number(text);
    if (text.trim() !== '' && Number.isFinite(m) && m > 0) {
      try {
        setDifficulty(toU64Hex(fromMultiplier(m)));
      } catch {
        // Leave the difficulty as it was; the engine reports bad input on Compute.
      }
    }
  };
  const onDifficulty = (text: string) => {
    setDifficulty(text);
    setMultiplier(multiplierOf(text));
  };

  const compute = async () => {
    const job = { root: root.trim(), difficulty: difficulty.trim() };
    setPhase('running');
    setError('');
    setFound(null);
    try {
      // The page parses the text once; the engine takes the number (a bigint crosses Comlink).
      const result = await browserEngine.engine.generate(job.root, parseDifficulty(job.difficulty), {
        backend,
        threads: threadsValid ? threadCount : undefined,
      });
      const { kernelState } = await browserEngine.engine.status();
      const verified = validateWork(job.root, result.work, job.difficulty).valid;
      setFound({ ...result, ...job, verified, kernelState });
      setPhase(verified ? 'done' : 'error');
      if (!verified) setError(`engine returned ${result.work}, which fails the reference check`);
    } catch (err) {
      if (err instanceof PowCancelledError) {
        setPhase('cancelled');
      } else {
        setPhase('error');
        setError((err as Error).message ?? String(err));
      }
    }
  };

  const cancel = () => void browserEngine.engine.cancel(root.trim());

  const benchmark = async () => {
    setPhase('benchmarking');
    setError('');
    setBench(null);
    try {
      const results = await browserEngine.engine.benchmark({
        backend,
        seconds: Number(seconds) > 0 ? Number(seconds) : 5,
        threads: threadsValid ? threadCount : undefined,
      });
      setBench(results);
      setPhase('benchmarked');
    } catch (err) {
      setPhase('error');
      setError((err as Error).message ?? String(err));
    }
  };

  const live = status?.hashrate ?? 0;
  return (
    <main class="lab">
      <header class="lab-head">
        <h1>dpow-web engine lab</h1>
        <p class="muted">One proof of work, or a benchmark, on the engine the app uses, in this browser.</p>
      </header>
      <form class="card lab-form" onSubmit={(e) => e.preventDefault()}>
        <label for="root">Root</label>
        <div class="lab-root">
          <input id="root" class="mono" data-testid="root" value={root} spellcheck={false}
            onInput={(e) => setRoot(e.currentTarget.value)} aria-invalid={!isRootHex(root.trim())} />
          <button type="button" class="btn" data-testid="random-root" onClick={() => setRoot(randomRoot())} disabled={busy}>
            Random
          </button>
        </div>
        <label for="difficulty">Difficulty</label>
        <input id="difficulty" class="mono" data-testid="difficulty" value={difficulty} spellcheck={false}
          onInput={(e) => onDifficulty(e.currentTarget.value)} />
        <label for="multiplier">Multiplier (× Nano send)</label>
        <input id="multiplier" data-testid="multiplier" value={multiplier}
          onInput={(e) => onMultiplier(e.currentTarget.value)} />
        <label for="backend">Backend</label>
        <select id="backend" data-testid="backend" value={backend}
          onChange={(e) => setBackend(e.currentTarget.value as BackendChoice)}>
          <option value="auto">Auto (WebGPU, else WASM)</option>
          <option value="webgpu">WebGPU</option>
          <option value="wasm">WASM</option>
        </select>
        <label for="threads">WASM threads</label>
        <input id="threads" type="number" min={1} max={64} data-testid="threads" value={threads}
          onInput={(e) => setThreads(e.currentTarget.value)} />
        <label for="seconds">Benchmark seconds</label>
        <input id="seconds" type="number" min={1} data-testid="bench-seconds" value={seconds}
          onInput={(e) => setSeconds(e.currentTarget.value)} />
        <div class="actions lab-buttons">
          <button type="button" class="btn btn-primary" data-testid="compute" onClick={compute} disabled={busy}>Compute</button>
          <button type="button" class="btn" data-testid="cancel" onClick={cancel} disabled={phase !== 'running'}>Cancel</button>
          <button type="button" class="btn" data-testid="benchmark" onClick={benchmark} disabled={busy}>Benchmark</button>
        </div>
      </form>

      <section class="card">
        <h2>Engine</h2>
        <dl class="lab-facts">
          <dt>State</dt>
          <dd data-testid="state" class={`state-${phase}`}>{phase}</dd>
          <dt>Engine</dt>
          <dd data-testid="engine-backend" data-backend={status?.backend ?? ''}>
            {status?.backend ? `${status.backend} · ${status.label}` : '—'}
          </dd>
          <dt>Hashrate</dt>
          {/* Live while a job runs; after it, the rate the job achieved (never a bare 0 H/s). */}
          <dd data-testid="hashrate" data-hps={String(live)}>
            {live > 0 ? `${formatHashrate(live)} live` : found ? `${formatHashrate(achieved(found))} achieved by the last job` : '—'}
          </dd>
          <dt>Total hashes</dt>
          <dd data-testid="total-hashes" data-count={String(status?.totalHashes ?? 0)}>{formatCount(status?.totalHashes ?? 0)}</dd>
          <dt>Kernel mismatches</dt>
          <dd data-testid="kernel-mismatches">{status?.kernelMismatches ?? 0}</dd>
          <dt>Kernel</dt>
          <dd data-testid="kernel" data-variant={status?.kernel ?? ''} data-calibrated={String(status?.calibratedRate ?? '')}>
            {status?.kernel ? `${status.kernel}${status.calibratedRate ? ` (calibrated ${formatHashrate(status.calibratedRate)})` : ''}` : '—'}
          </dd>
          <dt>Kernel tuner</dt>
          <dd data-testid="kernel-state">{status?.kernelState ?? '—'}</dd>
          <dt>Worker replaced</dt>
          <dd data-testid="worker-replacements" data-count={String(replacements.length)}>
            {replacements.length === 0 ? 'never' : replacements.map((r) => `${r.attempt}: it ${r.reason}`).join('; ')}
          </dd>
        </dl>
        {error && <p class="banner banner-error" data-testid="error">{error}</p>}
      </section>

      {found && (
        <section class="card" data-testid="result">
          <h2>Result</h2>
          <dl class="lab-facts">
            <dt>Work</dt>
            <dd class="mono" data-testid="work">{found.work}</dd>
            <dt>Value</dt>
            <dd class="mono" data-testid="value">{found.value}</dd>
            <dt>Reference check</dt>
            <dd data-testid="verified" class={found.verified ? 'state-done' : 'state-error'}>{found.verified ? 'valid' : 'INVALID'}</dd>
            <dt>Backend</dt>
            <dd data-testid="result-backend">{found.backend}</dd>
            <dt>Hashes</dt>
            <dd data-testid="hashes" data-count={String(found.hashes)}>{formatCount(found.hashes)}</dd>
            <dt>Achieved rate</dt>
            <dd data-testid="achieved" data-hps={String(achieved(found))}>{formatHashrate(achieved(found))}</dd>
            <dt>Kernel tuner then</dt>
            <dd data-testid="result-kernel-state">{found.kernelState ?? '—'}</dd>
            <dt>Time</dt>
            <dd data-testid="ms" data-ms={String(found.ms)}>{(found.ms / 1000).toFixed(2)} s</dd>
            <dt>Root</dt>
            <dd class="mono" data-testid="result-root">{found.root}</dd>
            <dt>Difficulty</dt>
            <dd class="mono" data-testid="result-difficulty">{found.difficulty}</dd>
          </dl>
        </section>
      )}

      {bench && (
        <section class="card">
          <h2>Benchmark</h2>
          <div class="table-wrap">
            <table data-testid="bench-results">
              <thead>
                <tr><th scope="col">Backend</th><th scope="col">Adapter / kernel</th><th scope="col" class="num">Threads</th><th scope="col" class="num">Hashrate</th><th scope="col" class="num">Hashes</th><th scope="col" class="num">Compile</th></tr>
              </thead>
              <tbody>
                {bench.map((r) => (
                  <tr key={`${r.backend}-${r.label}`}>
                    <td>{r.backend}</td>
                    <td>{r.label}</td>
                    <td class="num">{r.threads ?? '—'}</td>
                    <td class="num">{formatHashrate(r.hashrate)}</td>
                    <td class="num">{formatCount(r.hashes)}</td>
                    <td class="num">{formatCount(Math.round(r.compileMs))} ms</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
          <pre data-testid="bench-json" hidden>{JSON.stringify(bench)}</pre>
        </section>
      )}
    </main>
  );
}

render(<Lab />, document.getElementById('lab')!);
