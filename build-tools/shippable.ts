/**
 * What the npm package (and so the jsii tarball in the Python wheel) may hold: the assembly, the compiled
 * library, the handler bundles, the docs and the rosetta fixtures. Sources, tests, examples, benchmarks,
 * tooling and build leftovers (`.pacmak/`, `dist/`, `cdk.out/`) must not ship.
 */
export const SHIPPABLE: readonly RegExp[] = [
  /^package\/(\.jsii|package\.json|README\.md|LICENSE|API\.md)$/,
  /^package\/lib\/.+\.(js|d\.ts)$/,
  /^package\/assets\/.+$/,
  /^package\/rosetta\/[^/]+\.ts-fixture$/,
];

/** The entries of a package that SHIPPABLE does not allow. */
export function unshippable(entries: readonly string[]): string[] {
  return entries.filter((entry) => !SHIPPABLE.some((pattern) => pattern.test(entry)));
}
