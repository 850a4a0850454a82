/**
 * `dpow-web snapshot`: records the payout snapshot and prints each client's share.
 *
 *   dpow-web snapshot [--data <dir>] [--min-precache N] [--min-ondemand N] [--prefixes nano,xrb]
 *                     [--weight work|difficulty] [--dry-run] [--json]
 *
 * The shares are planSnapshot's (server/payout/snapshot-plan.ts): proportional to the work
 * since the last snapshot, one work one share or (`--weight difficulty`) each work weighted by
 * its difficulty multiplier; invalid addresses skipped; a work type paid only when at least
 * `--min-<type>` new units of it came in. `--dry-run` prints without recording. `dpow-web
 * payout` takes the same snapshot and pays it.
 */
import { ALL_PREFIXES } from '../dpow/address.ts';
import { DATA_OPTION, openCliStore, STORE_OPTION } from './store-option.ts';
import { planSnapshot, type SnapshotPlan, type SnapshotRules } from '../server/payout/snapshot-plan.ts';
import { CliError, defineCommand, intOption, parseCommand } from './args.ts';

function print(plan: SnapshotPlan, recorded: boolean, dryRun: boolean): void {
  const w = (s: string) => process.stdout.write(`${s}\n`);
  const types = plan.paid.length ? plan.paid.join(' + ') : 'nothing';
  w(`new work since the last snapshot: precache ${plan.newWork.precache}, ondemand ${plan.newWork.ondemand}; paying ${types}`);
  for (const s of plan.shares) {
    const weighted = s.weighted !== undefined ? `  weighted ${s.weighted.toFixed(3)}` : '';
    w(`${(s.share * 100).toFixed(4).padStart(9)}%  ${s.address}  precache ${s.precache}  ondemand ${s.ondemand}${weighted}`);
  }
  for (const s of plan.skipped) w(`skipped  ${s.address.slice(0, 80)}: ${s.reason}`);
  w(recorded ? 'snapshot recorded' : dryRun ? 'dry run: nothing recorded' : 'nothing to pay yet: nothing recorded');
}

export function command() {
  return defineCommand('snapshot')
    .option(...DATA_OPTION)
    .option(...STORE_OPTION)
    .option('--min-precache <n>', 'pay precache only when at least this many new units came in', '1')
    .option('--min-ondemand <n>', 'pay ondemand only when at least this many new units came in', '1')
    .option('--prefixes <list>', 'address prefixes that may be paid, comma-separated (default: all known)')
    .option('--weight <rule>', 'work (one work, one share) or difficulty (each work weighs its multiplier)', 'work')
    .option('--dry-run', 'print the shares without recording them')
    .option('--json', 'one JSON line instead of the table');
}

interface SnapshotOptions {
  data: string;
  store?: string;
  minPrecache: string;
  minOndemand: string;
  prefixes?: string;
  weight: string;
  dryRun?: boolean;
  json?: boolean;
}

export async function run(argv: string[]): Promise<number> {
  const { options: values } = parseCommand<SnapshotOptions>(command(), argv);
  if (values.weight !== 'work' && values.weight !== 'difficulty') {
    throw new CliError(`--weight must be work or difficulty, got "${values.weight}"`);
  }
  const rules: SnapshotRules = {
    minPrecache: intOption(values.minPrecache, 'min-precache', 1, 0),
    minOndemand: intOption(values.minOndemand, 'min-ondemand', 1, 0),
    weight: values.weight,
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
