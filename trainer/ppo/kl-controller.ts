/**
 * KL coefficient control (Ziegler et al. 2019, as OpenRLHF's kl_controller): fixed, or adaptive —
 * beta moves proportionally to how far the measured KL is from the target, over a horizon of samples.
 */
export interface KlController {
  value: number;
  update(currentKl: number, samples: number): void;
}

export function fixedKl(value: number): KlController {
  return { value, update() {} };
}

export function adaptiveKl(initial: number, target: number, horizon: number): KlController {
  return {
    value: initial,
    update(currentKl, samples) {
      const error = Math.min(0.2, Math.max(-0.2, currentKl / target - 1));
      this.value *= 1 + (error * samples) / horizon;
    },
  };
}
