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
import { silentLogger, type Logger } from '../log.ts';
import { RateLimiter } from './rate-limit.ts';
import type { DispatcherStore, ServiceRecord } from '../store/store.ts';
import { DispatchError, type DispatcherApi } from '../types.ts';

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
  #closed = false;

  constructor(options: ServiceRequestOptions) {
    this.#dispatcher = options.dispatcher;
    this.#store = options.store;
    this.#policy = options.policy;
    this.#log = options.log ?? silentLogger;
    this.#verifier = new ApiKeyVerifier({ now: options.now });
    this.#limiter = new RateLimiter({ now: options.now });
  }

  /** From now on every request is answered "Service shutting down". */
  close(): void {
    this.#closed = true;
  }

  /** Forgets rate-limit buckets that have refilled (call now and then). */
  prune(): void {
    this.#limiter.prune();
  }

  /** Looks the service up and checks its key and rate limit; the Rejection says why not. */
  async authenticate(user: unknown, apiKey: unknown): Promise<ServiceRecord | Rejection> {
    if (typeof user !== 'string' || typeof apiKey !== 'string' || user === '' || apiKey === '') {
      return reject('missing-fields', 400, ERRORS.missing);
    }
    const service = await this.#store.getService(user);
    if (!service || !(await this.#verifier.verify(user, apiKey, service.apiKeyHash))) {
      // JSON-quoted: a user name from the request must not be able to forge log lines.
      return reject('invalid-credentials', 401, ERRORS.credentials, `user ${JSON.stringify(user.slice(0, 64))}`);
    }
    const rate = this.#limiter.take(service.user, service.rateLimit);
    if (!rate.ok) {
      const seconds = String(Math.max(1, Math.ceil(rate.retryAfterMs / 1000)));
      return new Rejection('rate-limited', 429, { error: ERRORS.rateLimited }, `user ${JSON.stringify(user)}`, { 'Retry-After': seconds });
    }
    return service;
  }

  /** One service request, already parsed, to one reply. Never throws. */
  async handle(parsed: unknown, origin: string): Promise<Reply> {
    this.counters.requests++;
    let id: unknown;
    let user: string | undefined;
    const withId = (body: Record<string, unknown>) => (id === undefined ? body : { ...body, id });
    try {
      if (this.#closed) throw reject('shutting-down', 503, ERRORS.shuttingDown);
      if (!isRecord(parsed)) throw reject('missing-fields', 400, ERRORS.missing);
      id = parsed.id;
      const login = readServiceLogin(parsed);
      if (login instanceof Rejection) throw login;
      const service = await this.authenticate(login.user, login.apiKey);
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
      });
      this.counters.work++;
      this.#countService(user, 'work');
      return { status: 200, body: withId({ work: answer.work, hash: work.hash }) };
    } catch (err) {
      const rejection = this.#rejectionFor(err, origin);
      this.#count(rejection.reason);
      this.#countService(user, rejection.reason);
      if (rejection.reason !== 'internal') {
        this.#log.info(`service: ${rejection.reason} from ${origin}${rejection.detail ? `: ${rejection.detail}` : ''}`);
      }
      return { status: rejection.status, body: withId(rejection.body), headers: rejection.headers };
    }
  }

  /**
   * A request refused before it could be read (not JSON, too large, wrong method, too many in
   * flight): counted as a request and by reason, and logged like the others.
   */
  refuse(reason: string, status: number, error: string, origin: string): Reply {
    this.counters.requests++;
    return this.refuseUncounted(reason, status, error, origin);
  }

  /** As refuse(), for what never was a request (a wrong HTTP method). */
  refuseUncounted(reason: string, status: number, error: string, origin: string): Reply {
    this.#count(reason);
    this.#countService(undefined, reason);
    this.#log.info(`service: ${reason} from ${origin}`);
    return { status, body: { error } };
  }

  #rejectionFor(err: unknown, origin: string): Rejection {
    if (err instanceof Rejection) return err;
    if (err instanceof DispatchError && err.code === 'timeout') {
      return new Rejection('timeout', 504, { error: ERRORS.noWork, timeout: true });
    }
    if (err instanceof DispatchError && err.code === 'cancelled') return reject('cancelled', 409, ERRORS.cancelled);
    if (err instanceof DispatchError) return reject('shutting-down', 503, ERRORS.shuttingDown);
    if (err instanceof PowInputError && err.code === 'difficulty-too-high') {
      // The dispatcher's own ceiling is lower than this API's (configured apart).
      return tooHigh(this.#policy, err.message);
    }
    this.#log.error(`service: request from ${origin} failed: ${err instanceof Error ? err.stack : String(err)}`);
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
