/**
 * AdamW (Loshchilov & Hutter 2019): Adam moments with weight decay decoupled from the gradient.
 * tfjs ships Adam without decoupled decay, and its optimizers train every trainable variable unless
 * given a list; this one is built for an explicit variable list and exposes its state for resuming.
 * Decay applies to matrices only (not biases, LayerNorm gains or the position table), as in GPT-2.
 */
import * as tf from '@tensorflow/tfjs-core';

interface AdamWConfig {
  beta1: number;
  beta2: number;
  eps: number;
  weightDecay: number;
}

const ADAMW_DEFAULTS: AdamWConfig = { beta1: 0.9, beta2: 0.95, eps: 1e-8, weightDecay: 0.1 };

interface Slot {
  variable: tf.Variable;
  m: tf.Variable;
  v: tf.Variable;
  decay: boolean;
}

export class AdamW {
  private readonly slots: Map<string, Slot>;
  /** Number of updates applied (bias correction uses it). */
  step = 0;

  /**
   * @param vars the variables to train, keyed by a stable name (the checkpoint names)
   * @param decayed which of them get weight decay (default: rank >= 2 except the position table)
   */
  constructor(
    vars: Map<string, tf.Variable>,
    readonly config: AdamWConfig = ADAMW_DEFAULTS,
    decayed: (name: string, v: tf.Variable) => boolean = (name, v) => v.rank >= 2 && !name.endsWith('wpe'),
  ) {
    this.slots = new Map();
    // The zero tensors the moments start from are temporaries: tidy frees them, the variables stay.
    tf.tidy(() => {
      for (const [name, variable] of vars) {
        this.slots.set(name, {
          variable,
          m: tf.variable(tf.zerosLike(variable), false, `${variable.name}/adam_m`),
          v: tf.variable(tf.zerosLike(variable), false, `${variable.name}/adam_v`),
          decay: decayed(name, variable),
        });
      }
    });
  }

  /**
   * Applies one update. `grads` is keyed by the variables' tfjs names (what tf.variableGrads returns).
   * Call inside the training step's tf.tidy.
   */
  apply(grads: tf.NamedTensorMap, lr: number): void {
    this.step += 1;
    const { beta1, beta2, eps, weightDecay } = this.config;
    const c1 = 1 - Math.pow(beta1, this.step);
    const c2 = 1 - Math.pow(beta2, this.step);
    for (const slot of this.slots.values()) {
      const g = grads[slot.variable.name];
      if (!g) continue;
      const m = tf.add(tf.mul(slot.m, beta1), tf.mul(g, 1 - beta1));
      const v = tf.add(tf.mul(slot.v, beta2), tf.mul(tf.square(g), 1 - beta2));
      const update = tf.div(tf.div(m, c1), tf.add(tf.sqrt(tf.div(v, c2)), eps));
      const decayed = slot.decay && weightDecay > 0 ? tf.mul(slot.variable, 1 - lr * weightDecay) : slot.variable;
      slot.variable.assign(tf.sub(decayed, tf.mul(update, lr)));
      slot.m.assign(m);
      slot.v.assign(v);
    }
  }

  /** Moment tensors in a stable order, for a checkpoint's resume state. */
  stateTensors(): { name: string; tensor: tf.Tensor }[] {
    const out: { name: string; tensor: tf.Tensor }[] = [];
    for (const [name, slot] of this.slots) {
      out.push({ name: `${name}/m`, tensor: slot.m });
      out.push({ name: `${name}/v`, tensor: slot.v });
    }
    return out;
  }

  /** Restores moments saved by `stateTensors` (names and shapes must match) and the step count. */
  restore(tensors: { name: string; tensor: tf.Tensor }[], step: number): void {
    const byName = new Map(tensors.map((t) => [t.name, t.tensor]));
    for (const [name, slot] of this.slots) {
      for (const part of ['m', 'v'] as const) {
        const t = byName.get(`${name}/${part}`);
        if (!t) throw new Error(`optimizer state lacks '${name}/${part}'`);
        if (t.shape.join(',') !== slot[part].shape.join(',')) throw new Error(`optimizer state '${name}/${part}' has shape [${t.shape}], expected [${slot[part].shape}]`);
      }
    }
    for (const [name, slot] of this.slots) {
      slot.m.assign(byName.get(`${name}/m`)!);
      slot.v.assign(byName.get(`${name}/v`)!);
    }
    this.step = step;
  }

  dispose(): void {
    for (const slot of this.slots.values()) {
      slot.m.dispose();
      slot.v.dispose();
    }
  }
}

/**
 * Scales gradients so that their global L2 norm is at most `maxNorm`; returns the scaled map and
 * the norm before clipping (a scalar tensor). Call inside tf.tidy.
 */
export function clipByGlobalNorm(grads: tf.NamedTensorMap, maxNorm: number): { grads: tf.NamedTensorMap; norm: tf.Scalar } {
  const squares = Object.values(grads).map((g) => tf.sum(tf.square(g)));
  const norm = tf.sqrt(tf.addN(squares)) as tf.Scalar;
  if (!(maxNorm > 0)) return { grads, norm };
  const scale = tf.minimum(1, tf.div(maxNorm, tf.add(norm, 1e-6)));
  const clipped: tf.NamedTensorMap = {};
  for (const [k, g] of Object.entries(grads)) clipped[k] = tf.mul(g, scale);
  return { grads: clipped, norm };
}
