#!/usr/bin/env bash
# The whole offline pipeline on a small machine (2 CPU cores, no GPU), from corpora to the shipped
# default models: tokenizer -> pretrain (WikiText + Brown) -> SFT (Cornell dialogues) -> eval
# -> reward model (bootstrap pairs) -> export to models/default/{policy,reward}. Each training stage
# checkpoints; rerun a stage with --resume to continue it.
#
#   CORPUS_DIR=/path/to/corpora npm run pipeline        (see docs/training.md, section Corpora)
#
# Budgets (PRETRAIN_EPOCHS, SFT_STEPS, RM_STEPS) are the knobs for time; docs/model.md states what the
# defaults took on a 2-core machine.
set -euo pipefail
cd "$(dirname "$0")/.."

: "${CORPUS_DIR:?set CORPUS_DIR to the folder holding wikitext-2-raw/ and the Cornell corpus (docs/training.md: Corpora)}"
export CORPUS_DIR
RUNS="${STATE_DIR:-./.state}/runs"
PRESET="${PRESET:-small}"
PRETRAIN_EPOCHS="${PRETRAIN_EPOCHS:-1}"
SFT_STEPS="${SFT_STEPS:-1000}"
RM_STEPS="${RM_STEPS:-400}"
DROPOUT="${DROPOUT:-0}"
# Data-parallel engines for pretraining and SFT: one per core (wasm runs one thread per engine).
THREADS="${THREADS:-$(node -p 'require("os").availableParallelism()')}"
OUT="${OUT:-models/default}"
HH_EVAL="$CORPUS_DIR/hh-rlhf/helpful-base/test.jsonl.gz"

# 1. Tokenizer: byte-level BPE, 4096 ids, on WikiText + Brown + Cornell training dialogues.
npm run -s train -- tokenizer --vocab-size=4096 --out="$RUNS/tokenizer/tokenizer.json"

# 2. Pretraining: the small GPT learns English from packed WikiText + Brown text.
npm run -s train -- pretrain --preset="$PRESET" --tokenizer="$RUNS/tokenizer/tokenizer.json" \
  --epochs="$PRETRAIN_EPOCHS" --dropout="$DROPOUT" --threads="$THREADS" --out="$RUNS/pretrain"

# 3. SFT: multi-turn Cornell movie dialogues, loss on the assistant's turns only.
npm run -s train -- sft --init="$RUNS/pretrain" --max-steps="$SFT_STEPS" --threads="$THREADS" --out="$RUNS/sft"

# 4. Evaluation of both, so the report shows what SFT changed.
mkdir -p "$OUT"
npm run -s eval -- --checkpoint "$RUNS/pretrain" --json | tail -n 1 > "$OUT/eval-pretrain.json"
npm run -s eval -- --checkpoint "$RUNS/sft" --json | tail -n 1 > "$OUT/eval-sft.json"

# 5. Ship the SFT model (also the PPO reference) without its optimizer state.
npm run -s train -- export --from="$RUNS/sft" --out="$OUT/policy"
npx tsx trainer/eval-report.ts "$OUT/eval-pretrain.json" "$OUT/eval-sft.json" > "$OUT/EVAL.md"

# 6. The default reward model: bootstrap pairs from the Cornell training split (true reply over
#    another conversation's, a repeated, an empty or a truncated one), evaluated on held-out bootstrap
#    pairs and, when present, HH-RLHF helpful-base test.
EVAL_PAIRS=""
[ -f "$HH_EVAL" ] && EVAL_PAIRS="--eval-pairs=$HH_EVAL"
npm run -s train -- rm --policy="$OUT/policy" --bootstrap-from-corpus --max-steps="$RM_STEPS" $EVAL_PAIRS --out="$OUT/reward" --json \
  | tail -n 1 > "$OUT/eval-reward.json"
npx tsx trainer/eval-report.ts "$OUT/eval-pretrain.json" "$OUT/eval-sft.json" "$OUT/eval-reward.json" > "$OUT/EVAL.md"
echo "default models written to $OUT/policy and $OUT/reward; reports in $OUT/EVAL.md and $OUT/eval-reward.json"
