/**
 * The KL coefficient beta of the per-token penalty -beta (log pi - log pi_ref): fixed, or steered
 * towards a target KL.
 *
 * 'adaptive' is Ziegler et al. (2019) and TRL's AdaptiveKLController:
 * e = clip(KL / target - 1, -0.2, 0.2), beta <- beta (1 + e n / horizon), where KL is the
 * rollout's mean sequence-level KL and n its number of episodes. In a short run it misses its
 * target several-fold: every run starts at KL 0, so the error sits at -0.2 on every update until
 * the KL nears the target and beta decays geometrically (0.2 -> 0.05 in 7 updates); then it can
 * recover by at most x1.2 per update while the KL keeps rising (wind-up), and it sees each
 * rollout's KL one update after the policy moved.
 *
 * 'latched' fixes those three: beta stays at its initial value until the rollout KL, extrapolated
 * one update ahead, first reaches `engageAt` x target (no decay while the policy has not moved
 * yet, so nothing to wind up); from then on beta is corrected in log space by the ratio of the
 * extrapolated KL to the target, log beta += gain log(KL_next / target), limited to x `maxStep`
 * up and ÷ `maxDecrease` down per update and to `maxFactor` x its initial value, so an overshoot is answered within an update or two instead of a dozen; within
 * ±`deadband` of the target beta rests, and below it beta is lowered only once the KL stops rising.
 */
export type KlControl = 'adaptive' | 'latched';

export interface KlControllerState {
  value: number;
  /** 'latched': whether the controller has engaged, and the previous rollout's KL (for the trend). */
  engaged?: boolean;
  previousKl?: number;
}

/** Where 'latched' engages (fraction of the target), how hard it corrects, and its largest factor per update. */
export const LATCHED = { engageAt: 0.5, gain: 1, maxStep: 2, maxDecrease: 1.5, deadband: 0.15, maxFactor: 10 } as const;

export class KlController {
  /** The current coefficient. */
  value: number;
  private engaged = false;
  private previousKl: number | undefined;

  private readonly initial: number;

  constructor(
    initKlCoef: number,
    /** Target sequence-level KL (nats); undefined keeps the coefficient fixed. */
    readonly target: number | undefined,
    readonly horizon: number,
    readonly control: KlControl = 'adaptive',
  ) {
    this.value = initKlCoef;
    this.initial = initKlCoef;
  }

  get adaptive(): boolean {
    return this.target !== undefined;
  }

  /** After a rollout of `episodes` sequences whose mean KL was `kl`. */
  update(kl: number, episodes: number): void {
    if (this.target === undefined || !Number.isFinite(kl)) return;
    if (this.control === 'adaptive') {
      const error = Math.min(0.2, Math.max(-0.2, kl / this.target - 1));
      this.value *= 1 + (error * episodes) / this.horizon;
      return;
    }
    // The KL one update ahead: the policy keeps moving the way it moved during the last update.
    const trend = this.previousKl === undefined ? 0 : kl - this.previousKl;
    const ahead = Math.max(kl + trend, kl / 2, 1e-6);
    this.previousKl = kl;
    if (!this.engaged && ahead < LATCHED.engageAt * this.target) return;
    this.engaged = true;
    // Within the dead band the coefficient rests: chasing the rollouts' noise near the target only
    // ratchets it up (a run held at 1.1-1.3x its target took beta from 2.5 to 180 in 8 updates).
    const error = Math.log(ahead / this.target);
    if (Math.abs(error) <= Math.log(1 + LATCHED.deadband)) return;
    // Never down while the KL is still rising: it is on its way (the policy moves by itself once
    // the reward pulls), and a coefficient lowered on the way is wind-up again (the experiment's
    // quick run engaged at update 4 and took beta 0.2 -> 0.04 by update 8 while the KL rose 2.2 -> 4.4).
    if (error < 0 && trend > 0) return;
    // Down more slowly than up: an undershoot is cheap to correct, an overshoot is not (a run whose
    // coefficient fell 0.2 -> 0.023 while its KL rose towards 12 then ran to 17).
    this.value *= Math.exp(Math.min(Math.log(LATCHED.maxStep), Math.max(-Math.log(LATCHED.maxDecrease), LATCHED.gain * error)));
    // At most maxFactor x the initial coefficient: past it the penalty swamps the score, the value
    // targets blow up and the shared body diverges (a run held KL 2.4-3.7 at beta 0.8-1.3 for 9
    // updates, then went from beta 2.5 to 40 and KL 3.3 to 19.6, value error 26 to 1e5).
    this.value = Math.min(this.value, LATCHED.maxFactor * this.initial);
  }

  state(): KlControllerState {
    return { value: this.value, engaged: this.engaged, previousKl: this.previousKl };
  }

  restore(s: KlControllerState): void {
    this.value = s.value;
    this.engaged = s.engaged ?? false;
    this.previousKl = s.previousKl;
  }
}
