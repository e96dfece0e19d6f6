// Training runs under the admin middleware: POST /train queues a run now (optionally with setting
// overrides, validated as TRAIN_CONFIG is) and returns it; GET /runs lists runs, newest first;
// GET /runs/:id gives one (status, config, per-phase metrics, error). The run is taken by the
// embedded trainer at once, or by `npm run trainer` (told by NOTIFY).
import { Hono } from 'hono';
import { z } from 'zod';
import { CHANNELS, createTrainingRun, getTrainingRun, listTrainingRuns, notify } from '../../db/index.ts';
import type { AppEnv, ServerDeps } from '../deps.ts';
import { ApiError } from '../errors.ts';
import { parseRunOverrides, resolveRunSettings } from '../../trainer/online/run-config.ts';
import { validate } from '../validation.ts';
import { idParam } from './body.ts';

const TrainBody = z.object({ config: z.record(z.string(), z.unknown()).optional() }).strict();

export function adminTrainingRoutes(deps: ServerDeps): Hono<AppEnv> {
  return new Hono<AppEnv>()
    .post('/train', async (c) => {
      const text = await c.req.text();
      let json: unknown = {};
      if (text.trim() !== '') {
        try {
          json = JSON.parse(text);
        } catch {
          throw new ApiError('bad_request', 'the body must be JSON: {} or {"config": {...run setting overrides}}');
        }
      }
      const body = validate(TrainBody, json);
      const overrides = parseRunOverrides(body.config ?? {}, 'config');
      resolveRunSettings(deps.config.trainer.overrides, overrides); // refuses combinations such as a minibatch over the batch
      const run = await createTrainingRun(deps.db, { config: { trigger: 'admin', overrides } });
      c.get('log').info({ run: run.id }, 'training run queued by an admin');
      await notify(deps.db, CHANNELS.runs, String(run.id)).catch(() => {});
      deps.trainer?.wake();
      return c.json({ run, trainer: deps.trainer ? 'embedded' : 'external' }, 202);
    })
    .get('/runs', async (c) => c.json({ runs: await listTrainingRuns(deps.db, { limit: 100 }) }))
    .get('/runs/:id', async (c) => {
      const id = idParam(c);
      const run = await getTrainingRun(deps.db, id);
      if (!run) throw new ApiError('not_found', `training run ${id} does not exist`);
      return c.json({ run });
    });
}
