/**
 * Binary min-heap of (primary, secondary) number pairs, ordered by primary then secondary.
 * Used by BPE encoding (lowest merge rank, then leftmost position) and training (highest count,
 * then smallest pair), where the ordering on two keys is what makes results deterministic.
 * Stored as two parallel arrays to avoid allocating an object per entry.
 */
export class MinHeap2 {
  private readonly primary: number[] = [];
  private readonly secondary: number[] = [];

  get size(): number {
    return this.primary.length;
  }

  /** Primary key of the smallest entry (undefined behaviour when empty; check size first). */
  get topPrimary(): number {
    return this.primary[0];
  }

  get topSecondary(): number {
    return this.secondary[0];
  }

  push(p: number, s: number): void {
    const P = this.primary;
    const S = this.secondary;
    let i = P.length;
    P.push(p);
    S.push(s);
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (P[parent] < p || (P[parent] === p && S[parent] <= s)) break;
      P[i] = P[parent];
      S[i] = S[parent];
      i = parent;
    }
    P[i] = p;
    S[i] = s;
  }

  /** Removes the smallest entry. */
  pop(): void {
    const P = this.primary;
    const S = this.secondary;
    const lastP = P.pop()!;
    const lastS = S.pop()!;
    const n = P.length;
    if (n === 0) return;
    let i = 0;
    for (;;) {
      const left = 2 * i + 1;
      if (left >= n) break;
      const right = left + 1;
      let child = left;
      if (right < n && (P[right] < P[left] || (P[right] === P[left] && S[right] < S[left]))) {
        child = right;
      }
      if (lastP < P[child] || (lastP === P[child] && lastS <= S[child])) break;
      P[i] = P[child];
      S[i] = S[child];
      i = child;
    }
    P[i] = lastP;
    S[i] = lastS;
  }
}
