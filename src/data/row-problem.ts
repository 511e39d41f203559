/**
 * Thrown while converting one row; the loader turns it into a BadRow. A dedicated class keeps
 * real bugs (TypeError etc.) from being reported as bad data.
 */
export class RowProblem extends Error {
  constructor(reason: string) {
    super(reason);
    this.name = 'RowProblem';
  }
}
