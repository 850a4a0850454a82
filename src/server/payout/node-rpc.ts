/**
 * The Nano node's RPC, for the actions a payout uses: account_balance, account_info,
 * validate_account_number, send (with its idempotency `id`) and block_info. Errors are values:
 *
 * - `unreachable`: no usable answer (connection refused, the timeout, a 5xx, a body that is not
 *   the JSON the action answers). Asking again may help, and for a send it is safe because the
 *   same `id` returns the same block.
 * - `refused`: the node answered {"error": …} ("Insufficient balance", "Wallet is locked", …).
 *   Asking again gives the same answer until a person changes something.
 *
 * Messages never carry the request: a send's body holds the wallet id.
 */
import { isRawString } from '../../dpow/nano-amount.ts';

export type NodeResult<T> = { ok: true; value: T } | { ok: false; unreachable: boolean; message: string };

export interface NodeRpcOptions {
  /** How long one call may take before it counts as unreachable. */
  timeoutMs: number;
}

export interface SendRequest {
  wallet: string;
  source: string;
  destination: string;
  amount: bigint;
  /** The idempotency key: the same id always answers the same block. */
  id: string;
}

export interface BlockInfo {
  confirmed: boolean;
  amount: bigint;
}

const BLOCK_HASH = /^[0-9A-Fa-f]{64}$/;
/** A node's replies are a few hundred bytes; more is not a node. */
const MAX_REPLY_CHARS = 64 * 1024;

export class NanoNodeRpc {
  readonly #options: NodeRpcOptions;

  constructor(
    readonly url: string,
    options: NodeRpcOptions,
  ) {
    this.#options = options;
  }

  /** One action: the reply object, the node's error, or why there was no usable answer. */
  async call(request: Record<string, string>): Promise<NodeResult<Record<string, unknown>>> {
    let text: string;
    try {
      const response = await fetch(this.url, {
        method: 'POST',
        headers: { 'Content-Type': 'application/json' },
        body: JSON.stringify(request),
        signal: AbortSignal.timeout(this.#options.timeoutMs),
      });
      text = await response.text();
      if (response.status >= 500) return unreachable(`HTTP ${response.status}`);
      if (response.status !== 200) return { ok: false, unreachable: false, message: `HTTP ${response.status}` };
    } catch (err) {
      const e = err as Error & { cause?: { code?: string; message?: string } };
      if (e.name === 'TimeoutError') return unreachable(`no answer within ${this.#options.timeoutMs} ms`);
      return unreachable(e.cause?.code ?? e.cause?.message ?? e.message);
    }
    if (text.length > MAX_REPLY_CHARS) return unreachable(`a reply of ${text.length} characters`);
    let reply: unknown;
    try {
      reply = JSON.parse(text);
    } catch {
      return unreachable('a reply that is not JSON');
    }
    if (typeof reply !== 'object' || reply === null || Array.isArray(reply)) return unreachable('a reply that is not a JSON object');
    const body = reply as Record<string, unknown>;
    if (typeof body.error === 'string') return { ok: false, unreachable: false, message: body.error.slice(0, 200) };
    return { ok: true, value: body };
  }

  async accountBalance(account: string): Promise<NodeResult<{ balance: bigint; receivable: bigint }>> {
    return this.#read({ action: 'account_balance', account }, (r) =>
      isRawString(r.balance) ? { balance: BigInt(r.balance), receivable: isRawString(r.receivable) ? BigInt(r.receivable) : 0n } : undefined,
    );
  }

  /** Whether the account is opened (has blocks of its own): false for the node's "Account not found". */
  async isOpened(account: string): Promise<NodeResult<boolean>> {
    const result = await this.call({ action: 'account_info', account });
    if (!result.ok) return !result.unreachable && result.message === 'Account not found' ? { ok: true, value: false } : result;
    return typeof result.value.frontier === 'string' ? { ok: true, value: true } : unreachable('an account_info reply without a frontier');
  }

  async isValidAccount(account: string): Promise<NodeResult<boolean>> {
    return this.#read({ action: 'validate_account_number', account }, (r) => (r.valid === '1' ? true : r.valid === '0' ? false : undefined));
  }

  /** The send's block hash. */
  async send(request: SendRequest): Promise<NodeResult<string>> {
    const { wallet, source, destination, amount, id } = request;
    return this.#read({ action: 'send', wallet, source, destination, amount: amount.toString(), id }, (r) =>
      typeof r.block === 'string' && BLOCK_HASH.test(r.block) ? r.block.toUpperCase() : undefined,
    );
  }

  async blockInfo(hash: string): Promise<NodeResult<BlockInfo>> {
    return this.#read({ action: 'block_info', hash }, (r) =>
      isRawString(r.amount) && (r.confirmed === 'true' || r.confirmed === 'false' || typeof r.confirmed === 'boolean')
        ? { confirmed: r.confirmed === 'true' || r.confirmed === true, amount: BigInt(r.amount) }
        : undefined,
    );
  }

  async #read<T>(request: Record<string, string>, read: (reply: Record<string, unknown>) => T | undefined): Promise<NodeResult<T>> {
    const result = await this.call(request);
    if (!result.ok) return result;
    const value = read(result.value);
    return value === undefined ? unreachable(`a ${request.action} reply without the fields it answers`) : { ok: true, value };
  }
}

function unreachable(message: string): { ok: false; unreachable: true; message: string } {
  return { ok: false, unreachable: true, message };
}
