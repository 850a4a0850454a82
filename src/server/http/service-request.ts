/**
 * One on-demand service request, from its parsed JSON to its reply, with no HTTP in sight:
 * validate the fields, check the service's key and rate limit, work out the difficulty, ask the
 * dispatcher, and shape the answer or the rejection. service-api.ts carries it over POST
 * /service/ and WS /service_ws/.
 *
 * Every rejection is a reply with a fixed `error` text, counted by reason and logged; nothing a
 * client sends can throw out of here. Status codes and texts are listed in docs/service-api.md.
 */
import { checkAddress } from '../../dpow/address.ts';
import { difficultyError, type DifficultyPolicy } from '../../pow/difficulty.ts';
import { fromMultiplier, isRootHex, isU64Hex, parseMultiplier, PowInputError, toU64Hex } from '../../pow/work.ts';
import { ApiKeyVerifier } from './api-keys.ts';
import { clip, LogLimiter } from '../log-limit.ts';
import { silentLogger, type Logger } from '../log.ts';
import { RateLimiter } from './rate-limit.ts';
import type { DispatcherStore, ServiceRecord } from '../store/store.ts';
import { DispatchError, serviceRequester, type DispatcherApi } from '../types.ts';

export const DEFAULT_TIMEOUT_S = 5;
export const MAX_TIMEOUT_S = 30;

export const ERRORS = {
  missing: 'Incorrect submission. Required information: user, api_key, hash',
  credentials: 'Invalid credentials',
  hash: 'Invalid hash',
  account: 'Invalid account',
  difficulty: 'Invalid difficulty',
  tooLow: 'Difficulty too low',
  multiplier: 'Multiplier must be a float',
  timeout: 'Timeout must be an integer between 1 and 30',
  notJson: 'Bad request (not json)',
  tooLarge: 'Bad request (too large)',
  bodyTimeout: 'Bad request (body timeout)',
  rateLimited: 'Rate limit exceeded',
  noWork: 'Timeout reached without work',
  cancelled: 'Cancelled',
  shuttingDown: 'Service shutting down',
  internal: 'Internal error',
  forbidden: 'Forbidden',
  method: 'Method not allowed',
} as const;

/** One reply: the HTTP status (ignored on WebSocket) and the JSON body. */
export interface Reply {
  status: number;
  body: Record<string, unknown>;
  headers?: Record<string, string>;
}

/** Why a request is refused: the counted reason, the reply, and a detail for the log line. */
export class Rejection {
  constructor(
    readonly reason: string,
    readonly status: number,
    readonly body: Record<string, unknown>,
    readonly detail = '',
    readonly headers?: Record<string, string>,
  ) {}
}

const reject = (reason: string, status: number, error: string, detail = '') =>
  new Rejection(reason, status, { error }, detail);

export const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === 'object' && v !== null && !Array.isArray(v);

const present = (v: unknown) => v !== undefined && v !== null && v !== '';

/** Longest `id` string echoed back. */
export const MAX_ID_CHARS = 64;

/** What a reply may echo as `id`: a short string or a finite number, as callers use to match replies. */
export type RequestId = string | number;

/**
 * The request's `id` to echo (undefined when it has none), or the rejection for one that is
 * anything else: the reply never carries a caller's structure back.
 */
export function requestId(parsed: unknown): RequestId | undefined | Rejection {
  if (!isRecord(parsed) || parsed.id === undefined) return undefined;
  const id = parsed.id;
  if ((typeof id === 'string' && id.length <= MAX_ID_CHARS) || (typeof id === 'number' && Number.isFinite(id))) return id;
  const what = typeof id === 'string' ? `a string of ${id.length} characters` : Array.isArray(id) ? 'an array' : id === null ? 'null' : `a ${typeof id}`;
  return reject('bad-id', 400, ERRORS.notJson, `id is ${what}, not a number or a string of up to ${MAX_ID_CHARS} characters`);
}

// ------------------------------------------------------------------ validation (all of it)

/** The login fields, present or the request is incomplete (checked before the key). */
export interface ServiceLogin {
  user: unknown;
  apiKey: unknown;
}

/** What a valid request asks the dispatcher for. */
export interface ServiceWork {
  /** 64 hex as sent; the answer echoes it. */
  hash: string;
  difficulty: bigint;
  timeoutS: number;
  account?: string;
}

/**
 * The first look at a request: a JSON object with user, api_key and hash. Everything else is
 * checked only for an authenticated service (validateServiceWork), so a caller without a valid
 * key learns nothing from the other fields.
 */
export function readServiceLogin(r: Record<string, unknown>): ServiceLogin | Rejection {
  if (!present(r.user) || !present(r.api_key) || !present(r.hash)) return reject('missing-fields', 400, ERRORS.missing);
  return { user: r.user, apiKey: r.api_key };
}

/** The hash, account, timeout and difficulty of an authenticated request. */
export function validateServiceWork(r: Record<string, unknown>, policy: DifficultyPolicy): ServiceWork | Rejection {
  if (!isRootHex(r.hash)) return reject('bad-hash', 400, ERRORS.hash);
  const hash = r.hash;
  let account: string | undefined;
  if (present(r.account)) {
    const check = checkAddress(r.account);
    if (!check.ok) return reject('bad-account', 400, ERRORS.account, check.reason);
    account = r.account as string;
  }
  const timeoutS = parseTimeout(r.timeout);
  if (timeoutS instanceof Rejection) return timeoutS;
  const difficulty = serviceDifficulty(r, policy);
  if (difficulty instanceof Rejection) return difficulty;
  return { hash, difficulty, timeoutS, account };
}

function tooHigh(policy: DifficultyPolicy, detail = ''): Rejection {
  const maxText = `${toU64Hex(policy.max)} (multiplier ${policy.maxMultiplier})`;
  return reject('difficulty-too-high', 400, `Difficulty too high. Maximum: ${maxText}`, detail);
}

/** The difficulty a service request asks for: `difficulty` wins over `multiplier`. */
function serviceDifficulty(r: Record<string, unknown>, policy: DifficultyPolicy): bigint | Rejection {
  let difficulty: bigint;
  if (present(r.difficulty)) {
    if (!isU64Hex(r.difficulty)) return reject('bad-difficulty', 400, ERRORS.difficulty);
    difficulty = BigInt(`0x${r.difficulty}`);
  } else if (present(r.multiplier)) {
    let m: number;
    try {
      m = parseMultiplier(r.multiplier);
    } catch (err) {
      if (err instanceof PowInputError) return reject('bad-multiplier', 400, ERRORS.multiplier);
      throw err;
    }
    if (m > policy.maxMultiplier) return tooHigh(policy);
    difficulty = fromMultiplier(m, policy.base);
  } else {
    difficulty = policy.base;
  }
  const refused = difficultyError(difficulty, policy, 'request');
  if (refused?.code === 'difficulty-too-high') return tooHigh(policy);
  if (refused) return reject('difficulty-too-low', 400, ERRORS.tooLow);
  return difficulty;
}

function parseTimeout(value: unknown): number | Rejection {
  if (!present(value)) return DEFAULT_TIMEOUT_S;
  const n = typeof value === 'string' && /^\s*\d+\s*$/.test(value) ? Number(value) : value;
  if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > MAX_TIMEOUT_S) {
    return reject('bad-timeout', 400, ERRORS.timeout);
  }
  return n;
}

// ------------------------------------------------------------------ handling

export interface ServiceRequestOptions {
  dispatcher: DispatcherApi;
  store: DispatcherStore;
  policy: DifficultyPolicy;
  log?: Logger;
  /** Injectable clock for the rate limiter and key cache. */
  now?: () => number;
}

export interface RequestCounters {
  /** Requests received (HTTP and WebSocket). */
  requests: number;
  /** Requests answered with work. */
  work: number;
  /** Rejections and failures by reason (bad-json, invalid-credentials, timeout, ...). */
  errors: Record<string, number>;
  /**
   * Requests by service user and outcome (`work` or the rejection reason). Requests that never
   * authenticated are under UNAUTHENTICATED: user names from a request must not become metric
   * labels an attacker can multiply.
   */
  byService: Record<string, Record<string, number>>;
}

export const UNAUTHENTICATED = '-';

export class ServiceRequestHandler {
  readonly counters: RequestCounters = { requests: 0, work: 0, errors: {}, byService: {} };
  readonly #dispatcher: DispatcherApi;
  readonly #store: DispatcherStore;
  readonly #policy: DifficultyPolicy;
  readonly #log: Logger;
  readonly #verifier: ApiKeyVerifier;
  readonly #limiter: RateLimiter;
  /** Refusals are logged once per reason per interval, with a count: a flood stays a few lines. */
  readonly #refusals: LogLimiter;
  #closed = false;

  constructor(options: ServiceRequestOptions) {
    this.#dispatcher = options.dispatcher;
    this.#store = options.store;
    this.#policy = options.policy;
    this.#log = options.log ?? silentLogger;
    this.#verifier = new ApiKeyVerifier({ now: options.now });
    this.#limiter = new RateLimiter({ now: options.now });
    this.#refusals = new LogLimiter(this.#log, { now: options.now });
  }

  /** From now on every request is answered "Service shutting down". */
  close(): void {
    this.#closed = true;
    this.#refusals.close();
  }

  /** Forgets rate-limit buckets that have refilled (call now and then). */
  prune(): void {
    this.#limiter.prune();
  }

  /**
   * Looks the service up and checks its key and rate limit; the Rejection says why not.
   * `source` is the caller's sourceKey: wrong keys are throttled per source.
   */
  async authenticate(user: unknown, apiKey: unknown, source: string): Promise<ServiceRecord | Rejection> {
    if (typeof user !== 'string' || typeof apiKey !== 'string' || user === '' || apiKey === '') {
      return reject('missing-fields', 400, ERRORS.missing);
    }
    const service = await this.#store.getService(user);
    // An unknown user costs the same scrypt as a wrong key (the verifier's dummy record).
    if (!(await this.#verifier.verify(user, apiKey, service?.apiKeyHash, source)) || !service) {
      return reject('invalid-credentials', 401, ERRORS.credentials, `user ${clip(user)}`);
    }
    const rate = this.#limiter.take(service.user, service.rateLimit);
    if (!rate.ok) {
      const seconds = String(Math.max(1, Math.ceil(rate.retryAfterMs / 1000)));
      return new Rejection('rate-limited', 429, { error: ERRORS.rateLimited }, `user ${clip(user)}`, { 'Retry-After': seconds });
    }
    return service;
  }

  /**
   * One service request, already parsed, to one reply. `source` is the caller's sourceKey (its
   * address, for the log and the failed-login throttle). Never throws.
   */
  async handle(parsed: unknown, source: string): Promise<Reply> {
    this.counters.requests++;
    let id: RequestId | undefined;
    let user: string | undefined;
    const withId = (body: Record<string, unknown>) => (id === undefined ? body : { ...body, id });
    try {
      if (this.#closed) throw reject('shutting-down', 503, ERRORS.shuttingDown);
      if (!isRecord(parsed)) throw reject('missing-fields', 400, ERRORS.missing);
      const checkedId = requestId(parsed);
      if (checkedId instanceof Rejection) throw checkedId;
      id = checkedId;
      const login = readServiceLogin(parsed);
      if (login instanceof Rejection) throw login;
      const service = await this.authenticate(login.user, login.apiKey, source);
      if (service instanceof Rejection) throw service;
      user = service.user;
      const work = validateServiceWork(parsed, this.#policy);
      if (work instanceof Rejection) throw work;

      const answer = await this.#dispatcher.requestWork({
        hash: work.hash,
        difficulty: work.difficulty,
        workType: 'ondemand',
        timeoutMs: work.timeoutS * 1000,
        service: service.user,
        // The dispatcher tracks this account for precache (DispatcherApi contract).
        account: work.account,
        requester: serviceRequester(service.user),
      });
      this.counters.work++;
      this.#countService(user, 'work');
      return { status: 200, body: withId({ work: answer.work, hash: work.hash }) };
    } catch (err) {
      const rejection = this.#rejectionFor(err, source);
      this.#count(rejection.reason);
      this.#countService(user, rejection.reason);
      if (rejection.reason !== 'internal') this.#logRefusal(rejection.reason, source, rejection.detail);
      return { status: rejection.status, body: withId(rejection.body), headers: rejection.headers };
    }
  }

  /**
   * A request refused before it could be read (not JSON, too large, wrong method, too many in
   * flight): counted as a request and by reason, and logged like the others. `id` is echoed
   * only once requestId() has passed it.
   */
  refuse(reason: string, status: number, error: string, source: string, id?: RequestId): Reply {
    this.counters.requests++;
    const reply = this.refuseUncounted(reason, status, error, source);
    return id === undefined ? reply : { ...reply, body: { ...reply.body, id } };
  }

  /** As refuse(), for what never was a request (a wrong HTTP method). */
  refuseUncounted(reason: string, status: number, error: string, source: string, detail = ''): Reply {
    this.#count(reason);
    this.#countService(undefined, reason);
    this.#logRefusal(reason, source, detail);
    return { status, body: { error } };
  }

  /** `reason` is one of this module's fixed names, so the limiter's table of kinds stays small. */
  #logRefusal(reason: string, source: string, detail: string): void {
    this.#refusals.info(`service: ${reason}`, `service: ${reason} from ${source}${detail ? `: ${detail}` : ''}`);
  }

  #rejectionFor(err: unknown, source: string): Rejection {
    if (err instanceof Rejection) return err;
    if (err instanceof DispatchError && err.code === 'timeout') {
      return new Rejection('timeout', 504, { error: ERRORS.noWork, timeout: true });
    }
    if (err instanceof DispatchError && err.code === 'cancelled') return reject('cancelled', 409, ERRORS.cancelled);
    if (err instanceof DispatchError) return reject('shutting-down', 503, ERRORS.shuttingDown);
    if (err instanceof PowInputError && err.code === 'difficulty-too-high') {
      // Only a dispatcher given a lower ceiling than this API's says so (createServer gives both one policy).
      return tooHigh(this.#policy, err.message);
    }
    this.#log.error(`service: request from ${source} failed: ${err instanceof Error ? err.stack : String(err)}`);
    return reject('internal', 500, ERRORS.internal, String(err));
  }

  #count(reason: string): void {
    this.counters.errors[reason] = (this.counters.errors[reason] ?? 0) + 1;
  }

  #countService(user: string | undefined, outcome: string): void {
    const row = (this.counters.byService[user ?? UNAUTHENTICATED] ??= {});
    row[outcome] = (row[outcome] ?? 0) + 1;
  }
}
