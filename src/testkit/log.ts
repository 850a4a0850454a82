/** Test helper, never imported by the product: a logger that drops everything. */
const drop = (): void => undefined;

/** Satisfies every logger shape the server and feeds take (debug/info/warn/error). */
export const quietLogger = { debug: drop, info: drop, warn: drop, error: drop };
