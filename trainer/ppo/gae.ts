/**
 * Per-token rewards and Generalised Advantage Estimation (Schulman et al. 2016), on plain arrays:
 * one segment per reply, a value per action (the state before it).
 */

/** r_t = -beta * kl_t, plus the sequence score on the last action. */
export function tokenRewards(kl: Float64Array, score: number, beta: number): Float64Array {
  const r = new Float64Array(kl.length);
  for (let t = 0; t < kl.length; t++) r[t] = -beta * kl[t];
  if (r.length > 0) r[r.length - 1] += score;
  return r;
}

/**
 * delta_t = r_t + gamma V_{t+1} - V_t (V after the last action is 0: the episode ends);
 * A_t = delta_t + gamma lambda A_{t+1}; returns R_t = A_t + V_t.
 */
export function gae(rewards: Float64Array, values: Float64Array, gamma: number, lam: number): { advantages: Float64Array; returns: Float64Array } {
  const n = rewards.length;
  const advantages = new Float64Array(n);
  const returns = new Float64Array(n);
  let next = 0;
  for (let t = n - 1; t >= 0; t--) {
    const nextValue = t + 1 < n ? values[t + 1] : 0;
    const delta = rewards[t] + gamma * nextValue - values[t];
    next = delta + gamma * lam * next;
    advantages[t] = next;
    returns[t] = next + values[t];
  }
  return { advantages, returns };
}

/** (x - mean) / std over all entries (std floored), as PPO implementations whiten advantages. */
export function whiten(x: Float64Array): Float64Array {
  const n = x.length;
  if (n === 0) return x;
  const mean = x.reduce((a, b) => a + b, 0) / n;
  const variance = x.reduce((a, b) => a + (b - mean) ** 2, 0) / n;
  const std = Math.sqrt(variance) + 1e-8;
  return x.map((v) => (v - mean) / std);
}
