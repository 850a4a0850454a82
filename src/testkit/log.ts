/** Test helper, never imported by the product: a logger that drops everything. */
import { silentLogger, type Logger } from '../log.ts';

/** The one Logger shape every part takes (src/log.ts), with debug on so its lines are built too. */
export const quietLogger: Logger = { ...silentLogger, debug: () => undefined };
