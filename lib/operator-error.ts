/**
 * A failure an operator caused and can fix (a port in use, a data dir not writable, a missing
 * TLS file): one line naming the cause and the fix, printed without a stack trace.
 * scripts/cli-errors.ts gives it its exit status.
 */
export class OperatorError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'OperatorError';
  }
}

/** Who owns a path, for "chown" advice. */
export function ownerOf(uid: number): string {
  return uid === 0 ? 'root' : `uid ${uid}`;
}
