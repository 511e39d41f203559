/**
 * PPO's KL controllers on a synthetic KL response shaped like the experiment's PPO runs: every
 * run starts at KL 0; the KL moves towards c / beta a fraction a per update with momentum (Adam
 * keeps moving the way it moved), the controller sees each rollout's KL after the update that
 * produced it, and a KL that overshot comes down only a quarter as fast as it went up (what the
 * experiment's runs showed: KL 11-12 kept at a coefficient 30x larger). Its equilibrium
 * coefficient for the smallest target (c / target = 1.3) is within 'latched''s cap of 10x the start:
 * the cap exists because real runs diverged above it, which this response does not model. Ziegler's/TRL's controller
 * decays beta while the KL is still rising from 0 and then cannot catch up; 'latched' holds beta
 * until the KL nears the target and lands within +-30% of every target by the last update.
 */
import { describe, expect, it } from 'vitest';
import { KlController, type KlControl } from '../../../src/train/ppo/kl-controller.js';

function simulate(control: KlControl, target: number, updates = 30, c = 4, a = 0.08): { kl: number[]; beta: number[] } {
  const k = new KlController(0.2, target, 32, control);
  let kl = 0;
  let v = 0;
  const out = { kl: [] as number[], beta: [] as number[] };
  for (let t = 0; t < updates; t++) {
    out.kl.push(kl);
    out.beta.push(k.value);
    k.update(kl, 32);
    v = 0.5 * v + a * (c / k.value - kl);
    kl = Math.max(0, kl + (v > 0 ? v : v / 4));
  }
  return out;
}

describe('KL controllers on a synthetic KL response', () => {
  it("'latched' reaches every target within 30% by the last updates; 'adaptive' overshoots the small ones", () => {
    for (const target of [3, 6, 9, 12]) {
      const latched = simulate('latched', target);
      for (const kl of latched.kl.slice(-3)) expect(Math.abs(kl / target - 1), `target ${target}: ${latched.kl.map((x) => x.toFixed(1)).join(' ')}`).toBeLessThanOrEqual(0.3);
    }
    // The failure the experiment showed: target 3 ends near 9 (beta decayed first, then too slow to catch up).
    const adaptive = simulate('adaptive', 3);
    expect(adaptive.kl[29]).toBeGreaterThan(2 * 3);
    expect(adaptive.beta[1]).toBeCloseTo(0.2 * 0.8, 12); // decayed while the KL was still rising from 0
    expect(simulate('latched', 3).beta[1]).toBe(0.2);
  });

  it("'latched' holds beta until the KL extrapolated one update ahead reaches half the target, then moves it by at most x2 up and /1.5 down per update, down only once the KL stops rising", () => {
    const k = new KlController(0.2, 10, 32, 'latched');
    k.update(0, 32);
    k.update(1, 32);
    k.update(2, 32); // ahead 3 < 5: held
    expect(k.value).toBe(0.2);
    k.update(3, 32); // ahead 4 < 5: still held
    expect(k.value).toBe(0.2);
    k.update(4.5, 32); // ahead 6: engaged; below the target but still rising: held
    expect(k.value).toBe(0.2);
    k.update(4.5, 32); // ahead 4.5, no longer rising: beta / 1.5 at most
    expect(k.value).toBeCloseTo(0.2 / 1.5, 12);
    k.update(30, 32); // far above: at most x2
    expect(k.value).toBeCloseTo((0.2 / 1.5) * 2, 12);
    k.update(28, 32); // ahead 26: x2 again
    k.update(11, 32); // ahead max(11 - 17, 5.5) = 5.5: down by /1.5 only
    expect(k.value).toBeCloseTo((0.2 / 1.5) * 4 / 1.5, 12);
    k.update(10.5, 32); // ahead 10: within 15% of the target, beta rests
    expect(k.value).toBeCloseTo((0.2 / 1.5) * 4 / 1.5, 12);
    // Never above 10x the initial coefficient.
    for (let i = 0; i < 10; i++) k.update(100, 32);
    expect(k.value).toBeCloseTo(2, 12);
    // Engaged stays engaged (a resume restores it with the coefficient and the last KL).
    const resumed = new KlController(0.2, 10, 32, 'latched');
    resumed.restore(k.state());
    const [a, b] = [k, resumed].map((x) => (x.update(12, 32), x.value));
    expect(b).toBe(a);
  });
});
