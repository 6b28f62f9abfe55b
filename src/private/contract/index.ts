/**
 * The contract between the BakedImage construct and its provider's handlers (lambda/bake-image): the names on
 * the wire, the limits and defaults both sides check, and the typed spec with its encoder and decoder.
 *
 * This module must stay free of aws-cdk-lib and AWS SDK imports: the handler bundle includes it.
 */
export * from './names';
export * from './limits';
export * from './bake-spec';
