/** Small statistics and formatting helpers for the benchmark. */

export function median(values: readonly number[]): number {
  if (values.length === 0) {
    throw new Error('median of no values');
  }
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Milliseconds with one decimal. */
export function ms(value: number): string {
  return `${value.toFixed(1)} ms`;
}

/** Bytes as B and KB (1 KB = 1024 B). */
export function bytes(value: number): string {
  return value < 1024 ? `${value} B` : `${value} B (${(value / 1024).toFixed(1)} KB)`;
}

/** Dollars with enough digits for sub-cent amounts. */
export function usd(value: number): string {
  return `$${value.toFixed(6)}`;
}
