/** A user-facing error: the CLI prints its message as one line, without a stack trace. */
export class DpoError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DpoError';
  }
}

/**
 * `text` safe to print on a terminal: control characters (escape sequences, NUL, bells, a bare
 * CR...) from binary input are shown as \xNN, so an error quoting a bad file cannot garble or
 * drive the terminal. Newlines and tabs stay.
 */
export function printable(text: string): string {
  return text.replace(/[\x00-\x08\x0b-\x1f\x7f-\x9f]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
}
