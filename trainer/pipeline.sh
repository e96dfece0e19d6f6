#!/usr/bin/env bash
# The whole offline pipeline on a small machine (2 CPU cores, no GPU), from corpora to the shipped
# default models: tokenizer -> pretrain (WikiText + Brown + Cornell training text) -> SFT (Cornell
# dialogues, with a share of pretraining batches) -> average of the last SFT checkpoints -> the
# reward model (bootstrap pairs), with the evaluations beside it -> distill (the SFT policy's own
# maximum-mutual-information replies, ranked by the reward model) -> export -> evaluation
# -> $OUT/{policy,reward} with $OUT/EVAL.md.
#
#   CORPUS_DIR=/path/to/corpora npm run pipeline                 a fresh run
#   CORPUS_DIR=/path/to/corpora npm run pipeline -- --resume     continue a killed run
#
# Resumable: each step writes a done-marker (atomically, after the step's outputs) under
# $RUNS/.done/. With --resume, finished steps are skipped and the step that was running continues
# from its last checkpoint (pretrain and SFT resume bit-exactly; the other steps are short and
# start over). --resume with other settings than the run it continues is refused.
#
# Settings (environment; the defaults are the recipe of docs/recipe.md, sized for <= 3 hours on a
# quiet 2-core machine): PRESET, VOCAB_SIZE, BROWN, PRETRAIN_CORNELL, PRETRAIN_STEPS, PRETRAIN_LR,
# SFT_STEPS, SFT_LR, SFT_MIN_LR, SFT_PRETRAIN_SHARE, AVERAGE_LAST, CHECKPOINT_EVERY, RM_STEPS,
# DISTILL_PROMPTS, DISTILL_LAMBDA, DISTILL_ANTI_LM_TOKENS, DISTILL_KEEP, DISTILL_MAX_SAME_OPENING, DISTILL_STEPS, EVAL_PROMPTS, EVAL_MAX_TOKENS, TOKENIZER_MAX_CHARS, THREADS, OUT, STATE_DIR.
set -euo pipefail
cd "$(dirname "$0")/.."

RESUME=0
for arg in "$@"; do
  case "$arg" in
    --resume) RESUME=1 ;;
    *) echo "pipeline: unknown argument '$arg' (only --resume)" >&2; exit 2 ;;
  esac
done

: "${CORPUS_DIR:?set CORPUS_DIR to the folder holding wikitext-2-raw/ and the Cornell corpus (docs/training.md: Corpora)}"
export CORPUS_DIR
RUNS="${STATE_DIR:-./.state}/runs"
PRESET="${PRESET:-small}"
VOCAB_SIZE="${VOCAB_SIZE:-4096}"
BROWN="${BROWN:-true}"
PRETRAIN_CORNELL="${PRETRAIN_CORNELL:-true}"
PRETRAIN_STEPS="${PRETRAIN_STEPS:-6000}"
PRETRAIN_LR="${PRETRAIN_LR:-0.002}"
SFT_STEPS="${SFT_STEPS:-5000}"
SFT_LR="${SFT_LR:-0.001}"
SFT_MIN_LR="${SFT_MIN_LR:-0.0001}"
SFT_PRETRAIN_SHARE="${SFT_PRETRAIN_SHARE:-0.25}"
AVERAGE_LAST="${AVERAGE_LAST:-1}"
CHECKPOINT_EVERY="${CHECKPOINT_EVERY:-250}"
RM_STEPS="${RM_STEPS:-1200}"
DISTILL_PROMPTS="${DISTILL_PROMPTS:-6000}"
DISTILL_LAMBDA="${DISTILL_LAMBDA:-1}"
DISTILL_ANTI_LM_TOKENS="${DISTILL_ANTI_LM_TOKENS:-8}"
DISTILL_KEEP="${DISTILL_KEEP:-0.5}"
DISTILL_MAX_SAME_OPENING="${DISTILL_MAX_SAME_OPENING:-20}"
DISTILL_STEPS="${DISTILL_STEPS:-400}"
EVAL_PROMPTS="${EVAL_PROMPTS:-200}"
EVAL_MAX_TOKENS="${EVAL_MAX_TOKENS:-20000}"
TOKENIZER_MAX_CHARS="${TOKENIZER_MAX_CHARS:-8000000}"
# Data-parallel engines for pretraining and SFT: one per core (wasm runs one thread per engine).
THREADS="${THREADS:-$(node -p 'require("os").availableParallelism()')}"
OUT="${OUT:-models/default}"
HH_EVAL="$CORPUS_DIR/hh-rlhf/helpful-base/test.jsonl.gz"
DONE="$RUNS/.done"
SETTINGS="$RUNS/pipeline-settings"

say() { echo "[pipeline $(date -u +%H:%M:%S)] $*" >&2; }
train() { node --import tsx trainer/cli.ts "$@"; }
evaluate() { node --import tsx trainer/eval-cli.ts "$@"; }

# Everything that decides what the run computes (THREADS does not: data-parallel steps are exact).
settings() {
  cat <<EOF
CORPUS_DIR=$CORPUS_DIR
PRESET=$PRESET
VOCAB_SIZE=$VOCAB_SIZE
BROWN=$BROWN
PRETRAIN_CORNELL=$PRETRAIN_CORNELL
PRETRAIN_STEPS=$PRETRAIN_STEPS
PRETRAIN_LR=$PRETRAIN_LR
SFT_STEPS=$SFT_STEPS
SFT_LR=$SFT_LR
SFT_MIN_LR=$SFT_MIN_LR
SFT_PRETRAIN_SHARE=$SFT_PRETRAIN_SHARE
AVERAGE_LAST=$AVERAGE_LAST
CHECKPOINT_EVERY=$CHECKPOINT_EVERY
RM_STEPS=$RM_STEPS
DISTILL_PROMPTS=$DISTILL_PROMPTS
DISTILL_LAMBDA=$DISTILL_LAMBDA
DISTILL_ANTI_LM_TOKENS=$DISTILL_ANTI_LM_TOKENS
DISTILL_KEEP=$DISTILL_KEEP
DISTILL_MAX_SAME_OPENING=$DISTILL_MAX_SAME_OPENING
DISTILL_STEPS=$DISTILL_STEPS
EVAL_PROMPTS=$EVAL_PROMPTS
EVAL_MAX_TOKENS=$EVAL_MAX_TOKENS
TOKENIZER_MAX_CHARS=$TOKENIZER_MAX_CHARS
OUT=$OUT
EOF
}

# Writes a file from stdin atomically: readers see the old file or the whole new one.
write_atomically() {
  local tmp="$1.tmp-$$"
  cat > "$tmp"
  mv -f "$tmp" "$1"
}

if [ "$RESUME" = 1 ]; then
  if [ ! -f "$SETTINGS" ]; then echo "pipeline: --resume: no run to continue in $RUNS (start one without --resume)" >&2; exit 2; fi
  if ! diff <(cat "$SETTINGS") <(settings) >/dev/null; then
    echo "pipeline: --resume with other settings than the run in $RUNS:" >&2
    diff <(cat "$SETTINGS") <(settings) | sed -n 's/^[<>]/  &/p' >&2 || true
    exit 2
  fi
  say "resuming the run in $RUNS"
else
  # A fresh run: nothing of an earlier one in $RUNS is reused.
  rm -rf "$DONE" "$RUNS/tokenizer" "$RUNS/pretrain" "$RUNS/pretrain.snapshots" "$RUNS/sft" "$RUNS/sft.snapshots" "$RUNS/sft-avg" "$RUNS/distill" "$RUNS/distill.targets.jsonl" "$RUNS/eval"
  mkdir -p "$RUNS"
  settings | write_atomically "$SETTINGS"
fi
mkdir -p "$DONE" "$RUNS/eval" "$OUT"

# step NAME COMMAND...: runs COMMAND unless NAME is done, then marks NAME done.
step() {
  local name="$1"
  shift
  if [ -f "$DONE/$name" ]; then say "$name: done already"; return 0; fi
  say "$name"
  "$@"
  : | write_atomically "$DONE/$name"
}

# Budgets are in updates (--max-steps = --schedule-steps; --epochs only high enough not to stop first).
# --resume for a training stage that has a checkpoint to continue from.
resume_flag() { if [ -f "$1/meta.json" ]; then echo --resume; fi; }

# With AVERAGE_LAST > 1 the shipped policy is the mean of SFT's last AVERAGE_LAST checkpoints.
SFT_FINAL="$RUNS/sft"
SNAPSHOTS=0
if [ "$AVERAGE_LAST" -gt 1 ]; then SFT_FINAL="$RUNS/sft-avg"; SNAPSHOTS="$AVERAGE_LAST"; fi

tokenizer() {
  train tokenizer --vocab-size="$VOCAB_SIZE" --brown="$BROWN" --max-chars="$TOKENIZER_MAX_CHARS" --out="$RUNS/tokenizer/tokenizer.json"
}
pretrain() {
  train pretrain $(resume_flag "$RUNS/pretrain") --preset="$PRESET" --tokenizer="$RUNS/tokenizer/tokenizer.json" \
    --brown="$BROWN" --cornell="$PRETRAIN_CORNELL" --dropout=0 --lr="$PRETRAIN_LR" --min-lr="$(node -p "$PRETRAIN_LR / 10")" \
    --epochs=1000 --max-steps="$PRETRAIN_STEPS" --schedule-steps="$PRETRAIN_STEPS" --checkpoint-every="$CHECKPOINT_EVERY" \
    --eval-every="$CHECKPOINT_EVERY" --threads="$THREADS" --out="$RUNS/pretrain"
}
sft() {
  train sft $(resume_flag "$RUNS/sft") --init="$RUNS/pretrain" --pretrain-share="$SFT_PRETRAIN_SHARE" \
    --lr="$SFT_LR" --min-lr="$SFT_MIN_LR" --epochs=1000 --max-steps="$SFT_STEPS" --schedule-steps="$SFT_STEPS" \
    --checkpoint-every="$CHECKPOINT_EVERY" --eval-every="$CHECKPOINT_EVERY" --keep-snapshots="$SNAPSHOTS" \
    --threads="$THREADS" --out="$RUNS/sft"
}
average() { train average --from="$RUNS/sft" --last="$AVERAGE_LAST" --out="$RUNS/sft-avg"; }
# eval CHECKPOINT NAME: the test-split report as JSON in $RUNS/eval/NAME.json.
eval_json() {
  local line
  line="$(evaluate --checkpoint "$1" --prompts="$EVAL_PROMPTS" --max-tokens="$EVAL_MAX_TOKENS" --json | tail -n 1)"
  printf '%s\n' "$line" | write_atomically "$RUNS/eval/$2.json"
}
distill() {
  train distill $(resume_flag "$RUNS/distill") --init="$SFT_FINAL" --reward="$OUT/reward" --prompts="$DISTILL_PROMPTS" \
    --lambda="$DISTILL_LAMBDA" --anti-lm-tokens="$DISTILL_ANTI_LM_TOKENS" --keep-share="$DISTILL_KEEP" --max-same-opening="$DISTILL_MAX_SAME_OPENING" \
    --max-steps="$DISTILL_STEPS" --schedule-steps="$DISTILL_STEPS" --checkpoint-every="$CHECKPOINT_EVERY" \
    --eval-every="$CHECKPOINT_EVERY" --threads="$THREADS" --out="$RUNS/distill"
}
export_policy() { train export --from="$RUNS/distill" --out="$OUT/policy"; }
# The default reward model, on the SFT policy: bootstrap pairs from the Cornell training split (true
# reply over another conversation's, a repeated, an empty or a truncated one), evaluated on held-out
# bootstrap pairs and, when present, HH-RLHF helpful-base test.
reward() {
  local eval_pairs=() line
  if [ -f "$HH_EVAL" ]; then eval_pairs=(--eval-pairs="$HH_EVAL"); fi
  line="$(train rm --policy="$SFT_FINAL" --bootstrap-from-corpus --max-steps="$RM_STEPS" "${eval_pairs[@]}" --out="$OUT/reward" --json | tail -n 1)"
  printf '%s\n' "$line" | write_atomically "$RUNS/eval/reward.json"
}
report() {
  local name md
  for name in pretrain sft distill reward; do write_atomically "$OUT/eval-$name.json" < "$RUNS/eval/$name.json"; done
  md="$(node --import tsx trainer/eval-report.ts --pretrain "$OUT/eval-pretrain.json" --sft "$OUT/eval-sft.json" --distill "$OUT/eval-distill.json" --reward "$OUT/eval-reward.json")"
  printf '%s\n' "$md" | write_atomically "$OUT/EVAL.md"
}

step tokenizer tokenizer
step pretrain pretrain
step sft sft
if [ "$AVERAGE_LAST" -gt 1 ]; then step average average; fi
# The evaluations and the reward model each run on one engine: run side by side, this part of the run
# uses both cores. A failure of either fails the run (the evaluations' status is collected by wait).
( step eval-pretrain eval_json "$RUNS/pretrain" pretrain && step eval-sft eval_json "$SFT_FINAL" sft ) &
EVALS=$!
trap 'kill "$EVALS" 2>/dev/null || true' EXIT
step reward reward
wait "$EVALS"
trap - EXIT
step distill distill
step export export_policy
step eval-distill eval_json "$RUNS/distill" distill
step report report
say "default models written to $OUT/policy and $OUT/reward; reports in $OUT/EVAL.md and $OUT/eval-reward.json"
