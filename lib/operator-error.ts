/**
 * A failure an operator caused and can fix: bad usage, a config that does not hold, a port in
 * use, a data dir not writable, a missing TLS file. One line naming the cause and the fix,
 * printed without a stack trace; its kind gives the exit status (scripts/cli-errors.ts).
 */
export type OperatorErrorKind = 'usage' | 'config' | 'runtime';

export class OperatorError extends Error {
  /** The config key the message is about, printed before it (e.g. auth.htpasswd). */
  readonly configKey: string | undefined;

  constructor(message: string, readonly kind: OperatorErrorKind = 'runtime', options?: ErrorOptions & { configKey?: string }) {
    super(message, options);
    this.name = 'OperatorError';
    this.configKey = options?.configKey;
  }
}

/** Who owns a path, for "chown" advice. */
export function ownerOf(uid: number): string {
  return uid === 0 ? 'root' : `uid ${uid}`;
}
