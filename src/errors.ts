/** A user-facing error: the CLI prints its message as one line, without a stack trace. */
export class DpoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DpoError';
  }
}
