/**
 * Two batch sources interleaved at a fixed share, e.g. SFT batches with pretraining batches mixed
 * in so that fine-tuning does not erase what pretraining taught (catastrophic forgetting).
 *
 * An epoch is one pass over the primary source; the secondary's batches are spread evenly among
 * them (batch i of the epoch is a secondary one when floor((i+1)*s) > floor(i*s) for the share s of
 * all batches), and the secondary source continues where it left off in the next epoch, cycling
 * through its own epochs. Like every BatchSource, batch(epoch, index) is a pure function, so a
 * resumed run sees the batches the uninterrupted one would have seen.
 */
import type { Batch, BatchSource } from './batches.ts';

export function mixedSource(primary: BatchSource, secondary: BatchSource, share: number): BatchSource {
  if (!(share >= 0 && share < 1)) throw new Error(`mix share must be in [0, 1) (got ${share})`);
  if (share === 0) return primary;
  // Total batches per epoch such that the primary ones are exactly primary.batchesPerEpoch.
  const secondaryBefore = (i: number) => Math.floor(i * share);
  let perEpoch = Math.ceil(primary.batchesPerEpoch / (1 - share));
  while (perEpoch - secondaryBefore(perEpoch) > primary.batchesPerEpoch) perEpoch--;
  while (perEpoch - secondaryBefore(perEpoch) < primary.batchesPerEpoch) perEpoch++;
  const secondaryPerEpoch = secondaryBefore(perEpoch);
  return {
    batchesPerEpoch: perEpoch,
    batch(epoch: number, index: number): Batch {
      const before = secondaryBefore(index);
      if (secondaryBefore(index + 1) > before) {
        const k = epoch * secondaryPerEpoch + before; // the k-th secondary batch of the whole run
        return secondary.batch(Math.floor(k / secondary.batchesPerEpoch), k % secondary.batchesPerEpoch);
      }
      return primary.batch(epoch, index - before);
    },
  };
}
