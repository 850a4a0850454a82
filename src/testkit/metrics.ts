/** Test helper, never imported by the product: reading Prometheus text as a scraper would. */

/** The value of one series, named as it is printed: `name` or `name{label="v"}`; undefined when absent. */
export function sample(text: string, series: string): number | undefined {
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}
