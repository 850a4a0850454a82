/** Test helper, never imported by the product: a dispatcher part's broker side, recorded. */
import type { ClientMessage, WorkType } from '../dpow/codec.ts';
import type { BrokerSession } from '../server/dispatcher/broker-session.ts';

type Publishing = Pick<BrokerSession, 'publishWork' | 'publishCancel' | 'publishHeartbeat' | 'publishClient' | 'publishStatistics'>;

/**
 * Stands where the BrokerSession would (broker-session.test.ts tests that one on a real broker):
 * each publish lands in a list, in order, for the test to read.
 */
export class SessionRecorder implements Publishing {
  readonly work: Array<{ hash: string; difficulty: bigint; workType: WorkType }> = [];
  readonly cancels: Array<{ workType: WorkType; hash: string }> = [];
  readonly clients: Array<{ address: string; message: ClientMessage }> = [];
  readonly statistics: string[] = [];
  heartbeats = 0;

  publishWork(hash: string, difficulty: bigint, workType: WorkType): void {
    this.work.push({ hash, difficulty, workType });
  }

  publishCancel(workType: WorkType, hash: string): void {
    this.cancels.push({ workType, hash });
  }

  publishHeartbeat(): void {
    this.heartbeats++;
  }

  publishClient(address: string, message: ClientMessage): void {
    this.clients.push({ address, message });
  }

  publishStatistics(payload: string): void {
    this.statistics.push(payload);
  }
}
