/**
 * Recording what a run produced, in one transaction (which first checks that this trainer still holds
 * the trainer lock): a kept reward model becomes the active reward
 * version; the candidate policy is inserted, then activated if it passed the gate or rejected with the
 * gate's reasons; the pairs it trained on are marked as used by the new versions. Servers are told by
 * the caller (an in-process event, or NOTIFY when several processes share the database).
 */
import { checkpointWeightsSha256 } from '../../model/checkpoint/index.ts';
import { activateModelVersion, insertModelVersion, rejectModelVersion } from '../../db/repos/model-versions.ts';
import { markPairsUsed } from '../../db/repos/pairs.ts';
import { inTransaction, type Db } from '../../db/util.ts';
import type { OnlineRunResult } from './online-run.ts';

export interface Published {
  policyVersionId: number;
  rewardVersionId: number | null;
  activated: boolean;
}

export async function publishRun(
  db: Db,
  result: OnlineRunResult,
  ctx: {
    activePolicyVersionId: number | null;
    activeRewardVersionId: number | null;
    trainedPairIds: number[];
    /**
     * Asked inside the publishing transaction: whether this trainer still holds the trainer lock. A
     * trainer that lost it must not publish: a standby that took over has already failed this run.
     */
    lockHeld?: (trx: Db) => Promise<boolean>;
  },
): Promise<Published> {
  const policySha = await checkpointWeightsSha256(result.policy.dir);
  const rewardSha = result.reward.dir ? await checkpointWeightsSha256(result.reward.dir) : null;
  const gate = result.policy.gate;
  return inTransaction(db, async (trx) => {
    if (ctx.lockHeld && !(await ctx.lockHeld(trx))) throw new Error('this trainer no longer holds the trainer lock; the run is not published (another trainer may have taken over)');
    let rewardVersionId: number | null = null;
    if (result.reward.dir && rewardSha) {
      const rv = await insertModelVersion(trx, {
        kind: 'reward',
        parentId: ctx.activeRewardVersionId,
        checkpointPath: result.reward.dir,
        sha256: rewardSha,
        metrics: { held_out: JSON.parse(JSON.stringify(result.reward.after)), reward_mean: result.reward.mean, reward_std: result.reward.std },
      });
      await activateModelVersion(trx, rv.id);
      rewardVersionId = rv.id;
    }
    const last = result.policy.ppo.at(-1);
    const pv = await insertModelVersion(trx, {
      kind: 'policy',
      parentId: ctx.activePolicyVersionId,
      checkpointPath: result.policy.dir,
      sha256: policySha,
      metrics: {
        gate_reward: gate.candidate.reward,
        active_reward: gate.active.reward,
        gate_kl: gate.candidate.kl,
        empty_share: gate.candidate.emptyShare,
        repeated_share: gate.candidate.repeatedShare,
        ppl: gate.candidate.ppl,
        ...(last ? { ppo_reward: last.reward_mean, ppo_kl: last.kl } : {}),
      },
    });
    if (gate.passed) await activateModelVersion(trx, pv.id);
    else await rejectModelVersion(trx, pv.id, gate.reasons);
    const used = [pv.id, ...(rewardVersionId ? [rewardVersionId] : [])];
    for (const id of used) await markPairsUsed(trx, id, ctx.trainedPairIds);
    return { policyVersionId: pv.id, rewardVersionId, activated: gate.passed };
  });
}
