/** The data report names the limit that cut rows: --max-completion-length is not reported as max-length. */
import { describe, expect, it } from 'vitest';
import { truncateRow } from '../../../src/data/truncate.js';
import { describeData } from '../../../src/train/core/data-report.js';

const base = { rows: 4, droppedTooLong: 0, promptNotPrefix: 0, identicalAfterTruncation: 0, skippedBad: 0, totalTokens: 100 };

describe('data report: truncation', () => {
  it('truncateRow says which limits cut the row', () => {
    expect(truncateRow([1, 2, 3], [[4, 5, 6], [7]], { maxCompletionLength: 2, maxLength: 256 }, false)?.cutBy).toEqual(['maxCompletionLength']);
    expect(truncateRow([1, 2, 3, 4], [[5, 6, 7]], { maxPromptLength: 2, maxLength: 4 }, false)?.cutBy).toEqual(['maxPromptLength', 'maxLength']);
  });

  it('names max-completion-length, or every limit that cut', () => {
    expect(describeData('train', { ...base, truncated: 4, truncatedBy: { maxCompletionLength: { rows: 4, limit: 64 } } }, 256)).toBe(
      'train data: 4 rows, 100 tokens; 4 rows truncated to max-completion-length 64',
    );
    expect(describeData('train', { ...base, truncated: 3, truncatedBy: { maxCompletionLength: { rows: 2, limit: 64 }, maxLength: { rows: 1, limit: 256 } } }, 256)).toBe(
      'train data: 4 rows, 100 tokens; 3 rows truncated (2 to max-completion-length 64, 1 to max-length 256)',
    );
    expect(describeData('train', { ...base, truncated: 4, truncatedBy: { maxLength: { rows: 4, limit: 128 } } }, 128)).toBe('train data: 4 rows, 100 tokens; 4 rows truncated to max-length 128');
  });
});
