/**
 * Preference data for the reward model, from three sources:
 * (a) JSONL files: TRL's format (`prompt`/`chosen`/`rejected` as strings or message lists) and
 *     HH-RLHF's (`chosen`/`rejected` whole dialogues "\n\nHuman: …\n\nAssistant: …");
 * (b) bootstrap pairs made from the dialogue corpus, so a reward model exists before anyone rated:
 *     the true reply is chosen over a reply from another conversation and over degenerate replies
 *     (repeated, empty, truncated);
 * (c) pairs and single thumbs from the feedback store (the online loop passes them in).
 */
import { createReadStream } from 'node:fs';
import { createInterface } from 'node:readline';
import { createGunzip } from 'node:zlib';
import { seededRng } from '../../model/decode/rng.ts';
import type { ChatMessage } from '../../model/tokenizer/index.ts';

export interface PreferencePair {
  prompt: ChatMessage[];
  chosen: string;
  rejected: string;
  /** Where it came from (for per-source evaluation): 'hh-rlhf', 'trl', 'bootstrap', 'user', ... */
  source: string;
  /** How the rejected reply was made, for bootstrap pairs (see REJECTION_KINDS). */
  kind?: RejectionKind;
}

/** A single rated reply: label 1 = thumbs up, 0 = thumbs down. */
export interface RatedReply {
  prompt: ChatMessage[];
  reply: string;
  label: 0 | 1;
  source: string;
}

interface PairFileSummary {
  path: string;
  pairs: number;
  malformed: number;
  firstMalformedLines: number[];
}

/** "\n\nHuman: a\n\nAssistant: b…" → turns. Returns null when the text is not in that form. */
export function parseHhDialogue(text: string): ChatMessage[] | null {
  const parts = text.split(/\n\n(Human|Assistant): ?/);
  if (parts[0].trim() !== '' || parts.length < 3) return null;
  const turns: ChatMessage[] = [];
  for (let i = 1; i + 1 < parts.length; i += 2) {
    turns.push({ role: parts[i] === 'Human' ? 'user' : 'assistant', content: parts[i + 1].trim() });
  }
  return turns;
}

function asMessages(v: unknown): ChatMessage[] | null {
  if (typeof v === 'string') return [{ role: 'user', content: v }];
  if (!Array.isArray(v)) return null;
  const out: ChatMessage[] = [];
  for (const m of v) {
    if (!m || typeof m !== 'object') return null;
    const { role, content } = m as Record<string, unknown>;
    if ((role !== 'user' && role !== 'assistant' && role !== 'system') || typeof content !== 'string') return null;
    out.push({ role, content });
  }
  return out;
}

function lastAssistant(v: unknown): string | null {
  if (typeof v === 'string') return v;
  const msgs = asMessages(v);
  const last = msgs?.at(-1);
  return last && last.role === 'assistant' ? last.content : null;
}

/** One JSONL record → a pair, or null if it is neither TRL's nor HH-RLHF's format. */
export function parsePairRecord(rec: unknown): PreferencePair | null {
  if (!rec || typeof rec !== 'object') return null;
  const r = rec as Record<string, unknown>;
  if ('prompt' in r) {
    const prompt = asMessages(r.prompt);
    const chosen = lastAssistant(r.chosen);
    const rejected = lastAssistant(r.rejected);
    if (!prompt || chosen === null || rejected === null) return null;
    return { prompt, chosen, rejected, source: 'trl' };
  }
  if (typeof r.chosen !== 'string' || typeof r.rejected !== 'string') return null;
  const chosen = parseHhDialogue(r.chosen);
  const rejected = parseHhDialogue(r.rejected);
  if (!chosen || !rejected || chosen.at(-1)?.role !== 'assistant' || rejected.at(-1)?.role !== 'assistant') return null;
  const prompt = chosen.slice(0, -1);
  // The two dialogues share the prompt and differ in the last reply.
  if (prompt.length === 0 || JSON.stringify(prompt) !== JSON.stringify(rejected.slice(0, -1))) return null;
  return { prompt, chosen: chosen.at(-1)!.content, rejected: rejected.at(-1)!.content, source: 'hh-rlhf' };
}

/** Reads a JSONL file of pairs (gzipped or not); malformed lines are counted, not fatal. */
export async function readPairsJsonl(path: string, limit = Infinity): Promise<{ pairs: PreferencePair[]; summary: PairFileSummary }> {
  const input = createReadStream(path);
  const opened = new Promise<void>((resolve, reject) => {
    input.once('open', () => resolve());
    input.once('error', (err: NodeJS.ErrnoException) => reject(new Error(err.code === 'ENOENT' ? `pairs file not found: ${path}` : `cannot read ${path}: ${err.message}`)));
  });
  await opened;
  const stream = path.endsWith('.gz') ? input.pipe(createGunzip()) : input;
  const pairs: PreferencePair[] = [];
  const summary: PairFileSummary = { path, pairs: 0, malformed: 0, firstMalformedLines: [] };
  let lineNo = 0;
  for await (const line of createInterface({ input: stream, crlfDelay: Infinity })) {
    lineNo++;
    if (line.trim() === '') continue;
    let pair: PreferencePair | null = null;
    try {
      pair = parsePairRecord(JSON.parse(line));
    } catch {
      pair = null;
    }
    if (!pair) {
      summary.malformed++;
      if (summary.firstMalformedLines.length < 5) summary.firstMalformedLines.push(lineNo);
      continue;
    }
    pairs.push(pair);
    if (pairs.length >= limit) break;
  }
  summary.pairs = pairs.length;
  return { pairs, summary };
}

const REJECTION_KINDS = ['other', 'other', 'repeated', 'empty', 'truncated'] as const;
type RejectionKind = (typeof REJECTION_KINDS)[number];

/**
 * Bootstrap pairs from dialogues: for each dialogue's last assistant turn, the true reply is chosen
 * over (at random, seeded) a reply of another dialogue (twice as often: the hardest and most useful
 * kind), the reply with a word repeated many times, an empty reply, or the reply cut after its first
 * word or two.
 */
export function bootstrapPairs(dialogues: readonly { messages: ChatMessage[] }[], seed: number): PreferencePair[] {
  const rng = seededRng(seed);
  const replies = dialogues.map((d) => d.messages.at(-1)?.content ?? '');
  const out: PreferencePair[] = [];
  dialogues.forEach((d, i) => {
    const last = d.messages.at(-1);
    if (!last || last.role !== 'assistant' || last.content.trim() === '') return;
    const prompt = d.messages.slice(0, -1);
    const chosen = last.content;
    const words = chosen.split(/\s+/).filter(Boolean);
    const kind = REJECTION_KINDS[Math.floor(rng() * REJECTION_KINDS.length)];
    let rejected: string;
    if (kind === 'other') {
      let j = Math.floor(rng() * replies.length);
      if (j === i) j = (j + 1) % replies.length;
      rejected = replies[j];
    } else if (kind === 'repeated') {
      const w = words[Math.floor(rng() * words.length)] ?? 'the';
      rejected = Array.from({ length: 6 + Math.floor(rng() * 6) }, () => w).join(' ');
    } else if (kind === 'empty') {
      rejected = '';
    } else {
      rejected = words.length > 2 ? words.slice(0, 1 + Math.floor(rng() * 2)).join(' ') : '';
    }
    if (rejected === chosen) return;
    out.push({ prompt, chosen, rejected, source: 'bootstrap', kind });
  });
  return out;
}
