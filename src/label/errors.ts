/** Errors of the labelling server that the page shows, with the HTTP status they answer. */
import { DpoError } from '../errors.js';

export class LabelError extends DpoError {
  constructor(
    message: string,
    /** 409: the request no longer fits the session (reload); 507/500: a write failed, nothing saved. */
    readonly status: number,
  ) {
    super(message);
    this.name = 'LabelError';
  }
}
