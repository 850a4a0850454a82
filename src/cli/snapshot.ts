/**
 * `dpow-web snapshot`: records the payout snapshot and prints each client's share.
 *
 *   dpow-web snapshot [--data <dir>] [--min-precache N] [--min-ondemand N] [--prefixes nano,xrb]
 *                     [--dry-run] [--json]
 *
 * A client's share is proportional to its work since the last snapshot:
 *   (precache - snapshot_precache) + (ondemand - snapshot_ondemand)
 * Rules kept from the old server: addresses that fail the checksum (or have another coin's
 * prefix) are skipped, never paid; and a work type is paid, and snapshotted, only when at least
 * `--min-<type>` new units of it came in since the last snapshot across all payable clients, so
 * small amounts roll over to the next payout instead of being lost. `--dry-run` prints without
 * recording.
 */
import { ALL_PREFIXES, checkAddress } from '../dpow/address.ts';
import type { WorkType } from '../dpow/codec.ts';
import { openCliStore, STORE_OPTION } from './store-option.ts';
import type { ClientRecord, SnapshotEntry, SnapshotShare } from '../server/store/store.ts';
import { CliError, defineCommand, intOption, parseCommand } from './args.ts';

export interface SnapshotRules {
  minPrecache: number;
  minOndemand: number;
  prefixes?: readonly string[];
}

export interface SnapshotPlan {
  /** Work types paid (and snapshotted) this time. */
  paid: WorkType[];
  /** What to record: the counters the shares were computed from, for the paid types. */
  entries: SnapshotEntry[];
  /** New work per type across payable clients (paid or not). */
  newWork: { precache: number; ondemand: number };
  shares: SnapshotShare[];
  skipped: { address: string; reason: string }[];
}

/** Pure: what a snapshot of these clients pays under these rules. */
export function planSnapshot(clients: ClientRecord[], rules: SnapshotRules): SnapshotPlan {
  const prefixes = rules.prefixes ?? ALL_PREFIXES;
  const payable: { address: string; precache: number; ondemand: number; record: ClientRecord }[] = [];
  const skipped: SnapshotPlan['skipped'] = [];
  for (const c of clients) {
    const precache = Math.max(0, c.precache - c.snapshot_precache);
    const ondemand = Math.max(0, c.ondemand - c.snapshot_ondemand);
    if (precache === 0 && ondemand === 0) continue;
    const check = checkAddress(c.address, prefixes);
    if (!check.ok) {
      skipped.push({ address: c.address, reason: check.reason });
      continue;
    }
    payable.push({ address: c.address, precache, ondemand, record: c });
  }
  const newWork = {
    precache: payable.reduce((n, c) => n + c.precache, 0),
    ondemand: payable.reduce((n, c) => n + c.ondemand, 0),
  };
  const paid: WorkType[] = [];
  if (newWork.precache > 0 && newWork.precache >= rules.minPrecache) paid.push('precache');
  if (newWork.ondemand > 0 && newWork.ondemand >= rules.minOndemand) paid.push('ondemand');
  const counted = (c: { precache: number; ondemand: number }) =>
    (paid.includes('precache') ? c.precache : 0) + (paid.includes('ondemand') ? c.ondemand : 0);
  const total = payable.reduce((n, c) => n + counted(c), 0);
  const shares: SnapshotShare[] = payable
    .filter((c) => counted(c) > 0)
    .map((c) => ({
      address: c.address,
      precache: paid.includes('precache') ? c.precache : 0,
      ondemand: paid.includes('ondemand') ? c.ondemand : 0,
      share: counted(c) / total,
    }))
    .sort((a, b) => b.share - a.share || a.address.localeCompare(b.address));
  const entries: SnapshotEntry[] = payable
    .filter((c) => counted(c) > 0)
    .map((c) => ({
      address: c.address,
      ...(paid.includes('precache') ? { precache: c.record.precache } : {}),
      ...(paid.includes('ondemand') ? { ondemand: c.record.ondemand } : {}),
    }));
  return { paid, entries, newWork, shares, skipped };
}

function print(plan: SnapshotPlan, recorded: boolean, dryRun: boolean): void {
  const w = (s: string) => process.stdout.write(`${s}\n`);
  const types = plan.paid.length ? plan.paid.join(' + ') : 'nothing';
  w(`new work since the last snapshot: precache ${plan.newWork.precache}, ondemand ${plan.newWork.ondemand}; paying ${types}`);
  for (const s of plan.shares) {
    w(`${(s.share * 100).toFixed(4).padStart(9)}%  ${s.address}  precache ${s.precache}  ondemand ${s.ondemand}`);
  }
  for (const s of plan.skipped) w(`skipped  ${s.address.slice(0, 80)}: ${s.reason}`);
  w(recorded ? 'snapshot recorded' : dryRun ? 'dry run: nothing recorded' : 'nothing to pay yet: nothing recorded');
}

export function command() {
  return defineCommand('snapshot')
    .option('--data <dir>', 'the state directory dpow-web start uses', '.data')
    .option(...STORE_OPTION)
    .option('--min-precache <n>', 'pay precache only when at least this many new units came in', '1')
    .option('--min-ondemand <n>', 'pay ondemand only when at least this many new units came in', '1')
    .option('--prefixes <list>', 'address prefixes that may be paid, comma-separated (default: all known)')
    .option('--dry-run', 'print the shares without recording them')
    .option('--json', 'one JSON line instead of the table');
}

interface SnapshotOptions {
  data: string;
  store?: string;
  minPrecache: string;
  minOndemand: string;
  prefixes?: string;
  dryRun?: boolean;
  json?: boolean;
}

export async function run(argv: string[]): Promise<number> {
  const { options: values } = parseCommand<SnapshotOptions>(command(), argv);
  const rules: SnapshotRules = {
    minPrecache: intOption(values.minPrecache, 'min-precache', 1, 0),
    minOndemand: intOption(values.minOndemand, 'min-ondemand', 1, 0),
  };
  if (values.prefixes !== undefined) {
    const list = values.prefixes.split(',').map((p) => p.trim()).filter(Boolean);
    const unknown = list.filter((p) => !(ALL_PREFIXES as readonly string[]).includes(p));
    if (list.length === 0 || unknown.length) throw new CliError(`--prefixes must list some of ${ALL_PREFIXES.join(', ')}`);
    rules.prefixes = list;
  }
  const store = await openCliStore(values);
  try {
    const plan = planSnapshot(await store.listClients(), rules);
    const record = !values.dryRun && plan.paid.length > 0 && plan.shares.length > 0;
    // Recorded as the counters the shares came from: work credited meanwhile (the dispatcher may be
    // running on the same file) stays unpaid-but-counted for the next snapshot.
    if (record) await store.recordSnapshot(plan.entries);
    if (values.json) {
      const { entries: _entries, ...shown } = plan;
      process.stdout.write(`${JSON.stringify({ recorded: record, takenAt: new Date().toISOString(), ...shown })}\n`);
    } else {
      print(plan, record, values.dryRun as boolean);
    }
    return 0;
  } finally {
    await store.close();
  }
}
