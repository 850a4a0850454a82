/** Plain-text tables for the commands' listings: columns padded to their widest cell, two spaces apart. */

/** The rows as lines; `right` names the columns (by index) aligned right, for numbers. */
export function formatTable(rows: readonly (readonly string[])[], right: readonly number[] = []): string[] {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((row) => row[i].length)));
  return rows.map((row) => row.map((cell, i) => (right.includes(i) ? cell.padStart(widths[i]) : cell.padEnd(widths[i]))).join('  ').trimEnd());
}
