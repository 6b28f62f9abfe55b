import { IConstruct } from 'constructs';

/**
 * The symbols aws-cdk-lib marks its construct errors with: `Errors.isConstructError()` and
 * `Errors.isValidationError()` recognize an error by them, whatever class made it.
 */
const CONSTRUCT_ERROR = Symbol.for('@aws-cdk/core.SynthesisError');
const VALIDATION_ERROR = Symbol.for('@aws-cdk/core.ValidationError');

/**
 * A construct validation error as aws-cdk-lib throws them (its own `ValidationError` class is internal):
 * `Errors.isValidationError(error)` is true, the name is a stable error code, and the error carries the path
 * of the construct whose props failed.
 *
 * @param code a stable, PascalCase code (the error's name), e.g. `BakedImageInvalidProps`
 * @param message what is wrong, with the value and the fix
 * @param scope the construct whose props are wrong; none for a class that is not a construct
 */
export function validationError(code: string, message: string, scope?: IConstruct): Error {
  const error = new Error(message);
  error.name = code;
  Object.defineProperty(error, CONSTRUCT_ERROR, { value: true });
  Object.defineProperty(error, VALIDATION_ERROR, { value: true });
  Object.defineProperty(error, 'type', { value: 'validation' });
  Object.defineProperty(error, 'level', { value: 'error' });
  Object.defineProperty(error, 'constructPath', { value: scope?.node.path });
  return error;
}
