/** Learning-rate schedules as transformers' get_scheduler defines them (multiplier of the peak lr). */
export type LrScheduler = 'constant' | 'linear' | 'cosine';

/**
 * The learning rate of optimizer step `step` (0-based) out of `totalSteps`, with linear warm-up
 * over `warmupSteps` (as transformers: the first warm-up step runs at lr 0).
 */
export function learningRateAt(schedule: LrScheduler, peak: number, step: number, totalSteps: number, warmupSteps: number): number {
  if (step < warmupSteps) return (peak * step) / Math.max(1, warmupSteps);
  switch (schedule) {
    case 'constant':
      return peak;
    case 'linear':
      return peak * Math.max(0, (totalSteps - step) / Math.max(1, totalSteps - warmupSteps));
    case 'cosine': {
      const progress = (step - warmupSteps) / Math.max(1, totalSteps - warmupSteps);
      return peak * Math.max(0, 0.5 * (1 + Math.cos(Math.PI * progress)));
    }
  }
}
