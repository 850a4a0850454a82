/** Test helper, never imported by the product: a dispatcher without MQTT that does real work. */
import { toU64Hex, workValue } from '../pow/work.ts';
import { DispatchError, type DispatcherApi, type Requester, type WorkAnswer, type WorkRequest } from '../server/types.ts';
import { findWork } from './work.ts';

/**
 * A test-only DispatcherApi: answers with real work it computes itself, or fails the way the
 * real dispatcher does. `hold` keeps requests waiting until released.
 */
export class TestDispatcher implements DispatcherApi {
  requests: WorkRequest[] = [];
  tracked: string[] = [];
  withdrawn: string[] = [];
  cancelled: Array<{ hash: string; requester: Requester }> = [];
  behaviour: 'work' | 'timeout' | 'cancelled' | 'shutting-down' | 'throw' | 'hold' = 'work';
  #held: Array<{ request: WorkRequest; go: () => void }> = [];

  async requestWork(request: WorkRequest): Promise<WorkAnswer> {
    this.requests.push(request);
    // As the contract says: an account in the request is tracked for precache.
    if (request.account) await this.track(request.account);
    if (this.behaviour === 'hold') await new Promise<void>((go) => this.#held.push({ request, go }));
    if (this.behaviour === 'throw') throw new Error('store exploded');
    if (this.behaviour !== 'work' && this.behaviour !== 'hold') throw new DispatchError(this.behaviour, this.behaviour);
    const work = findWork(request.hash, request.difficulty);
    return { hash: request.hash, work, value: toU64Hex(workValue(request.hash, work)), cached: false };
  }
  /** Lets the held request for exactly this hash (case as sent) finish. */
  release(hash: string): void {
    this.#held.find((h) => h.request.hash === hash)!.go();
  }
  async precache(): Promise<void> {}
  async withdraw(hash: string): Promise<boolean> {
    this.withdrawn.push(hash);
    return true;
  }
  async cancel(hash: string, requester: Requester): Promise<number> {
    this.cancelled.push({ hash, requester });
    return 0;
  }
  async track(account: string): Promise<void> {
    this.tracked.push(account);
  }
}

