/**
 * Training progress: a bar on a terminal (step, loss, tokens/s, ETA), plain log lines otherwise, or
 * JSON lines with `--json`. Everything goes to stderr except JSON lines, which go to stdout so a
 * program can read them.
 */
import cliProgress from 'cli-progress';

type ProgressMode = 'bar' | 'lines' | 'json';

interface StepFields {
  step: number;
  loss: number;
  lr: number;
  tokensPerSec: number;
  epoch: number;
}

export interface ProgressReporter {
  start(total: number, initial: number): void;
  step(f: StepFields): void;
  /** A notable event (evaluation, checkpoint, resume), as text plus structured fields. */
  event(kind: string, fields: Record<string, unknown>, text: string): void;
  stop(): void;
}

export function progressMode(json: boolean, stream: NodeJS.WriteStream = process.stderr): ProgressMode {
  if (json) return 'json';
  return stream.isTTY ? 'bar' : 'lines';
}

export function createProgress(stage: string, mode: ProgressMode, logEvery = 10): ProgressReporter {
  if (mode === 'json') {
    const emit = (obj: Record<string, unknown>) => process.stdout.write(JSON.stringify({ stage, time: new Date().toISOString(), ...obj }) + '\n');
    return {
      start: (total, initial) => emit({ event: 'start', total, initial }),
      step: (f) => {
        if (f.step % logEvery === 0) emit({ event: 'step', ...f });
      },
      event: (kind, fields) => emit({ event: kind, ...fields }),
      stop: () => emit({ event: 'end' }),
    };
  }
  if (mode === 'lines') {
    let total = 0;
    let startedAt = Date.now();
    let first = 0;
    const line = (text: string) => process.stderr.write(`[${stage}] ${text}\n`);
    return {
      start: (t, initial) => {
        total = t;
        first = initial;
        startedAt = Date.now();
        line(`steps ${initial}/${t}`);
      },
      step: (f) => {
        if (f.step % logEvery !== 0 && f.step !== total) return;
        const done = f.step - first;
        const eta = done > 0 ? ((Date.now() - startedAt) / done) * (total - f.step) / 1000 : NaN;
        line(`step ${f.step}/${total} epoch ${f.epoch} loss ${f.loss.toFixed(4)} lr ${f.lr.toExponential(2)} ${Math.round(f.tokensPerSec)} tok/s eta ${Number.isFinite(eta) ? Math.round(eta) + 's' : '?'}`);
      },
      event: (_kind, _fields, text) => line(text),
      stop: () => {},
    };
  }
  const bar = new cliProgress.SingleBar(
    {
      format: `${stage} [{bar}] {value}/{total} | loss {loss} | {tps} tok/s | epoch {epoch} | ETA {eta_formatted}`,
      hideCursor: true,
      etaBuffer: 20,
    },
    cliProgress.Presets.shades_classic,
  );
  return {
    start: (total, initial) => bar.start(total, initial, { loss: '-', tps: '-', epoch: 0 }),
    step: (f) => bar.update(f.step, { loss: f.loss.toFixed(4), tps: Math.round(f.tokensPerSec), epoch: f.epoch }),
    event: (_kind, _fields, text) => {
      // Clear the bar's line, print the event, and let the next update redraw the bar below it.
      process.stderr.write(`\r\x1b[K${text}\n`);
      bar.update({});
    },
    stop: () => bar.stop(),
  };
}
