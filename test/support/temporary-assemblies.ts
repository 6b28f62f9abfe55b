/**
 * An `App` without `outdir` creates its cloud assembly directory (`cdk.outXXXXXX`) in the OS temp directory as soon as
 * it is constructed, synthesized or not, and aws-cdk-lib removes those directories only when the process exits, which
 * a jest worker never does normally: every such App of a test would stay behind. A test file that creates Apps calls
 * {@link removeTemporaryAssembliesAfterAll} once, at its top level: after its tests, the directories its Apps created
 * are removed (`CloudAssembly.cleanupTemporaryDirectories`, which aws-cdk-lib documents for this use). Jest gives every
 * test file its own aws-cdk-lib, so each file removes exactly its own.
 */
import { CloudAssembly } from 'aws-cdk-lib/cx-api';

/** Registers an afterAll that removes the temporary assembly directories of the test file's Apps. */
export function removeTemporaryAssembliesAfterAll(): void {
  afterAll(() => CloudAssembly.cleanupTemporaryDirectories());
}
