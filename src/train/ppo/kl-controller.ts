/**
 * The KL coefficient beta of the per-token penalty -beta (log pi - log pi_ref): fixed, or adapted
 * towards a target KL as in Ziegler et al. (2019) and TRL's AdaptiveKLController:
 * e = clip(KL / target - 1, -0.2, 0.2), beta <- beta (1 + e n / horizon), where KL is the
 * rollout's mean sequence-level KL and n its number of episodes.
 */
export interface KlControllerState {
  value: number;
}

export class KlController {
  /** The current coefficient. */
  value: number;

  constructor(
    initKlCoef: number,
    /** Target sequence-level KL (nats); undefined keeps the coefficient fixed. */
    readonly target: number | undefined,
    readonly horizon: number,
  ) {
    this.value = initKlCoef;
  }

  get adaptive(): boolean {
    return this.target !== undefined;
  }

  /** After a rollout of `episodes` sequences whose mean KL was `kl`. */
  update(kl: number, episodes: number): void {
    if (this.target === undefined || !Number.isFinite(kl)) return;
    const error = Math.min(0.2, Math.max(-0.2, kl / this.target - 1));
    this.value *= 1 + (error * episodes) / this.horizon;
  }

  state(): KlControllerState {
    return { value: this.value };
  }

  restore(s: KlControllerState): void {
    this.value = s.value;
  }
}
