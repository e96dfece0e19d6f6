"""PyTorch eager reference for `npm run bench:model -- --torch`: decode throughput of the same GPT.

The model is the architecture of model/gpt/gpt.ts (and its ONNX form, model/ort/gpt-graph.ts):
token + learned position embeddings, pre-LayerNorm blocks (LayerNorm eps 1e-5) of multi-head causal
self-attention (fused qkv projection, scores scaled after q @ k^T, additive mask, softmax) and a 4x
MLP with GELU in its tanh approximation, a final LayerNorm, and logits through the token embedding
(tied). Weights are random: speed does not depend on them.

What is measured is what bench/lib/model-measure.ts (`measureDecode`, `timePrefill`) measures, with
the same constants, so the figures sit side by side with the project's engines:
- decode_tokens_per_s: batch 1, prefill a 16-token prompt, then 64 greedy steps with a KV cache
  (keys and values concatenated per step, as the project's engines do); steps / seconds of the steps.
- decode_nocache_tokens_per_s: batch 1, same prompt, each new token from a prefill over the whole
  sequence so far (the cache thrown away).
- decode_batch8_tokens_per_s: 8 prompts of 12..19 tokens, left-padded with a key mask and per-token
  positions, prefilled together, then 64 steps; 8 * steps / seconds.
- decode_cpu_tokens_per_s / decode_batch8_cpu_tokens_per_s: the same per CPU second of this process.
- prefill_16_ms / prefill_100_ms: batch-1 prefill of 16 and 100 tokens (or the context), median of
  5 * runs.
When the context cannot hold prompt + 64 new tokens, fewer steps are run (decode_steps,
decode_batch8_steps), as in the project's bench. Each figure is a median over --runs after an untimed
warm-up, under torch.inference_mode(), with torch.set_num_threads(--threads) intra-op threads (and
as many OpenBLAS threads, when that is the system BLAS; the library in use is reported as `blas`).

Run (prints one JSON line on stdout; progress on stderr):
    /usr/bin/python3 bench/torch/decode.py --threads 1 --runs 3 \
        --config '{"vocabSize":4096,"context":128,"dModel":128,"nLayers":4,"nHeads":4}'
Needs torch (Debian: apt-get install python3-torch libopenblas0; without OpenBLAS, Debian's torch
runs its matrix products on the reference BLAS, ~10x slower here). Exits 3 when torch cannot be imported.
"""

import argparse
import ctypes
import json
import math
import os
import random
import statistics
import sys
import time
from typing import Callable

try:
    import torch
    import torch.nn.functional as F
    from torch import Tensor, nn
except ImportError as err:
    print(f"torch is not importable by {sys.executable} ({err}); install it with apt-get install python3-torch", file=sys.stderr)
    sys.exit(3)

# The constants of bench/lib/model-measure.ts.
PROMPT_LEN = 16
NEW_TOKENS = 64
BATCH8 = 8
BATCH8_PROMPT_MIN = 12  # prompts of 12..19 tokens
NEG = -1e9  # the additive mask value of model/gpt/batch-layout.ts

Cache = list[tuple[Tensor, Tensor]]  # per layer: keys, values (B, H, T, hs)


class Block(nn.Module):
    def __init__(self, d: int, n_heads: int) -> None:
        super().__init__()
        self.n_heads = n_heads
        self.ln1 = nn.LayerNorm(d, eps=1e-5)
        self.qkv = nn.Linear(d, 3 * d)  # columns [q | k | v], each split into heads
        self.attn_out = nn.Linear(d, d)
        self.ln2 = nn.LayerNorm(d, eps=1e-5)
        self.fc = nn.Linear(d, 4 * d)
        self.proj = nn.Linear(4 * d, d)

    def forward(self, x: Tensor, bias: Tensor, past: tuple[Tensor, Tensor] | None) -> tuple[Tensor, tuple[Tensor, Tensor]]:
        b, tn, d = x.shape
        hs = d // self.n_heads
        qkv = self.qkv(self.ln1(x)).view(b, tn, 3, self.n_heads, hs).permute(2, 0, 3, 1, 4)  # (3, B, H, Tn, hs)
        q, k, v = qkv[0], qkv[1], qkv[2]
        if past is not None:
            k = torch.cat([past[0], k], dim=2)  # (B, H, Tc+Tn, hs)
            v = torch.cat([past[1], v], dim=2)
        scores = (q @ k.transpose(-2, -1)) * (1 / math.sqrt(hs)) + bias  # (B, H, Tn, Tc+Tn)
        heads = torch.softmax(scores, dim=-1) @ v  # (B, H, Tn, hs)
        x = x + self.attn_out(heads.transpose(1, 2).reshape(b, tn, d))
        x = x + self.proj(F.gelu(self.fc(self.ln2(x)), approximate="tanh"))
        return x, (k, v)


class GPT(nn.Module):
    def __init__(self, vocab: int, context: int, d: int, n_layers: int, n_heads: int) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, d)
        self.wpe = nn.Embedding(context, d)
        self.blocks = nn.ModuleList(Block(d, n_heads) for _ in range(n_layers))
        self.ln_f = nn.LayerNorm(d, eps=1e-5)

    def forward(self, ids: Tensor, positions: Tensor, bias: Tensor, past: Cache | None) -> tuple[Tensor, Cache]:
        """Logits of each sequence's last position (B, V) and the extended cache."""
        x = self.wte(ids) + self.wpe(positions)  # (B, Tn, D)
        present: Cache = []
        for i, block in enumerate(self.blocks):
            x, kv = block(x, bias, past[i] if past is not None else None)
            present.append(kv)
        # As the project's engines: final LayerNorm on every row, logits for each sequence's last one
        # (its real last token: prompts are left-padded), through the token embedding (tied).
        return F.linear(self.ln_f(x)[:, -1], self.wte.weight), present


class Decoder:
    """prefill/step with the layout of model/gpt/batch-layout.ts: left padding, key mask, positions."""

    def __init__(self, model: GPT) -> None:
        self.model = model

    def prefill(self, prompts: list[list[int]]) -> tuple[Tensor, Cache, Tensor, Tensor]:
        b, tn = len(prompts), max(len(p) for p in prompts)
        ids = torch.zeros(b, tn, dtype=torch.long)
        positions = torch.zeros(b, tn, dtype=torch.long)
        valid = torch.zeros(b, tn, dtype=torch.bool)
        for r, p in enumerate(prompts):
            pad = tn - len(p)
            ids[r, pad:] = torch.tensor(p)
            positions[r, pad:] = torch.arange(len(p))
            valid[r, pad:] = True
        causal = torch.ones(tn, tn, dtype=torch.bool).tril()
        allowed = causal[None] & valid[:, None, :]  # (B, Tn, Tn)
        bias = torch.zeros(b, 1, tn, tn).masked_fill(~allowed[:, None], NEG)
        logits, cache = self.model(ids, positions, bias, None)
        next_pos = torch.tensor([len(p) for p in prompts])
        return logits, cache, valid, next_pos

    def step(self, cache: Cache, key_valid: Tensor, next_pos: Tensor, tokens: Tensor) -> tuple[Tensor, Cache, Tensor, Tensor]:
        key_valid = torch.cat([key_valid, torch.ones(len(tokens), 1, dtype=torch.bool)], dim=1)  # (B, Tc+1)
        bias = torch.zeros(key_valid.shape).masked_fill(~key_valid, NEG)[:, None, None, :]  # (B, 1, 1, Tc+1)
        logits, cache = self.model(tokens[:, None], next_pos[:, None], bias, cache)
        return logits, cache, key_valid, next_pos + 1


def blas_library() -> str | None:
    """The BLAS library this process loaded: Debian's torch links libblas.so.3, which update-alternatives
    points at the reference BLAS (libblas3, several times slower on these matrices) or OpenBLAS."""
    try:
        with open("/proc/self/maps") as maps:
            paths = {line.split()[-1] for line in maps}
    except OSError:
        return None
    blas = sorted(os.path.realpath(p) for p in paths if p.startswith("/") and "blas" in os.path.basename(p))
    return blas[0] if blas else None


def pin_blas_threads(library: str | None, threads: int) -> None:
    """torch.set_num_threads sets OpenMP's threads, not those of an OpenBLAS linked as the system BLAS,
    whose pthread build would otherwise use every core for the matrix products."""
    if library is None:
        return
    try:
        ctypes.CDLL(library).openblas_set_num_threads(threads)
    except (OSError, AttributeError):  # not OpenBLAS: single-threaded or following OpenMP
        pass


def ids_source(seed: int, vocab: int) -> Callable[[int], list[int]]:
    rng = random.Random(seed)
    return lambda n: [rng.randrange(vocab) for _ in range(n)]


def time_cached(dec: Decoder, prompts: list[list[int]], steps: int) -> tuple[float, float]:
    """Prefill, then `steps` greedy steps; wall and CPU seconds of the steps only."""
    logits, cache, key_valid, next_pos = dec.prefill(prompts)
    cpu0, t0 = time.process_time(), time.perf_counter()
    for _ in range(steps):
        # The project's engines hand logits to JS and take the argmax there; .tolist() is the same
        # round trip to the host.
        tokens = torch.tensor(logits.argmax(-1).tolist())
        logits, cache, key_valid, next_pos = dec.step(cache, key_valid, next_pos, tokens)
    return time.perf_counter() - t0, time.process_time() - cpu0


def time_nocache(dec: Decoder, prompt: list[int], steps: int) -> float:
    seq = list(prompt)
    t0 = time.perf_counter()
    for _ in range(steps):
        logits, _, _, _ = dec.prefill([seq])
        seq.append(int(logits[0].argmax()))
    return time.perf_counter() - t0


def time_prefill_ms(dec: Decoder, prompt: list[int], runs: int) -> float:
    times = []
    for r in range(runs + 1):
        t0 = time.perf_counter()
        dec.prefill([prompt])
        if r > 0:
            times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2)


def measure(cfg: dict, runs: int, log: Callable[[str], None]) -> dict:
    context, vocab = cfg["context"], cfg["vocabSize"]
    torch.manual_seed(cfg.get("initSeed", 1))
    model = GPT(vocab, context, cfg["dModel"], cfg["nLayers"], cfg["nHeads"]).eval()
    dec = Decoder(model)
    steps = min(NEW_TOKENS, context - PROMPT_LEN)
    batch8_max = BATCH8_PROMPT_MIN + BATCH8 - 1
    batch8_steps = min(NEW_TOKENS, context - batch8_max)
    ids = ids_source(1234, vocab)
    prompt = ids(PROMPT_LEN)
    batch_prompts = [ids(BATCH8_PROMPT_MIN + b) for b in range(BATCH8)]

    # Warm-up of each path (first-use allocations, kernel selection), not timed.
    time_cached(dec, [prompt], 2)
    time_cached(dec, batch_prompts, 2)
    time_nocache(dec, prompt, 2)

    cached, cached_cpu, nocache, batched, batched_cpu = [], [], [], [], []
    for r in range(1, runs + 1):
        wall, cpu = time_cached(dec, [prompt], steps)
        cached.append(steps / wall)
        cached_cpu.append(steps / cpu)
        nocache.append(steps / time_nocache(dec, prompt, steps))
        wall, cpu = time_cached(dec, batch_prompts, batch8_steps)
        batched.append(BATCH8 * batch8_steps / wall)
        batched_cpu.append(BATCH8 * batch8_steps / cpu)
        log(f"decode run {r}/{runs}: cached {cached[-1]:.1f} tok/s, no cache {nocache[-1]:.1f} tok/s, batch {BATCH8} {batched[-1]:.1f} tok/s")

    prefill_ids = ids_source(99, vocab)
    med = lambda xs: round(statistics.median(xs), 1)
    return {
        "decode_tokens_per_s": med(cached),
        "decode_nocache_tokens_per_s": med(nocache),
        "decode_batch8_tokens_per_s": med(batched),
        "decode_cpu_tokens_per_s": med(cached_cpu),
        "decode_batch8_cpu_tokens_per_s": med(batched_cpu),
        "prefill_16_ms": time_prefill_ms(dec, prefill_ids(min(16, context)), runs * 5),
        "prefill_100_ms": time_prefill_ms(dec, prefill_ids(min(100, context)), runs * 5),
        "decode_prompt_tokens": PROMPT_LEN,
        "decode_steps": steps,
        "decode_batch8_prompt_tokens": [BATCH8_PROMPT_MIN, batch8_max],
        "decode_batch8_steps": batch8_steps,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--config", required=True, help="the GPT config as JSON (model/gpt/config.ts keys)")
    ap.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    cfg = json.loads(args.config)
    missing = [k for k in ("vocabSize", "context", "dModel", "nLayers", "nHeads") if k not in cfg]
    if missing:
        ap.error(f"--config lacks {', '.join(missing)}")
    if cfg["context"] <= BATCH8_PROMPT_MIN + BATCH8 - 1:
        ap.error(f"--config: context {cfg['context']} cannot hold the batch-8 prompts")
    torch.set_num_threads(args.threads)
    blas = blas_library()
    pin_blas_threads(blas, args.threads)
    log = lambda line: print(f"[torch {args.threads} thread(s)] {line}", file=sys.stderr, flush=True)
    with torch.inference_mode():
        figures = measure(cfg, args.runs, log)
    print(json.dumps({"torch": torch.__version__, "python": sys.executable, "threads": torch.get_num_threads(), "blas": blas, "runs": args.runs, **figures}))


if __name__ == "__main__":
    main()
