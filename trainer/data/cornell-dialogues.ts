/**
 * Cornell conversations (cornell.ts) as user/assistant training dialogues, split by movie.
 *
 * Turning a conversation into training dialogues (`conversationToDialogues`):
 *  1. consecutive utterances of the same character are merged into one turn (joined by a space),
 *     so turns strictly alternate between the two characters;
 *  2. offset 0: turn 0 is the user, turn 1 the assistant, turn 2 the user, …; a trailing user turn
 *     (nothing to learn from it) is dropped; at least one user + assistant pair is required;
 *  3. with `bothOffsets`, also offset 1: turn 0 is dropped and the same is done from turn 1, so that
 *     every turn after the first is the assistant's reply in exactly one dialogue (SFT trains on
 *     assistant turns only, so offset 0 alone would never train on the second character's lines).
 *     A conversation of N turns yields floor(N/2) assistant turns at offset 0 and floor((N-1)/2)
 *     at offset 1.
 *
 * Train/valid/test split BY MOVIE (`movieSplit`): sha1("cornell-movie-split:" + movieID), the first
 * 4 bytes as a fraction u in [0,1): u < test → test, u < test + valid → valid, else train. The
 * split of a movie depends only on its id (not on file order or on which other movies are present),
 * so no dialogue of a test movie can reach training.
 */
import { createHash } from 'node:crypto';
import { loadCornell, SPLITS, type CornellConversation, type CornellDialogue, type CornellLoadSummary, type CornellPaths, type Split } from './cornell.ts';

interface DialogueOptions {
  /** Also produce the dialogue shifted by one turn (default false); see the file header. */
  bothOffsets?: boolean;
}

/** Merges consecutive utterances of the same character into turns. */
export function toTurns(conv: CornellConversation): Array<{ characterId: string; text: string }> {
  const turns: Array<{ characterId: string; text: string }> = [];
  for (const u of conv.utterances) {
    const last = turns[turns.length - 1];
    if (last !== undefined && last.characterId === u.characterId) last.text = `${last.text} ${u.text}`;
    else turns.push({ characterId: u.characterId, text: u.text });
  }
  return turns;
}

/** The user/assistant dialogues of one conversation (0, 1 or 2 of them). */
export function conversationToDialogues(conv: CornellConversation, options: DialogueOptions = {}): CornellDialogue[] {
  const turns = toTurns(conv);
  const out: CornellDialogue[] = [];
  const offsets: Array<0 | 1> = options.bothOffsets === true ? [0, 1] : [0];
  for (const offset of offsets) {
    const t = turns.slice(offset);
    if (t.length % 2 === 1) t.pop(); // a trailing user turn gets no reply
    if (t.length < 2) continue;
    out.push({
      movieId: conv.movieId,
      conversationId: conv.conversationId,
      offset,
      userCharacterId: t[0].characterId,
      assistantCharacterId: t[1].characterId,
      messages: t.map((turn, k) => ({ role: k % 2 === 0 ? 'user' : 'assistant', content: turn.text })),
    });
  }
  return out;
}

// ---------- split ----------

interface SplitRatios {
  valid: number;
  test: number;
}
const DEFAULT_SPLIT_RATIOS: SplitRatios = { valid: 0.05, test: 0.05 };

/** Deterministic split of a movie from its id alone (see the file header). */
export function movieSplit(movieId: string, ratios: SplitRatios = DEFAULT_SPLIT_RATIOS): Split {
  if (!(ratios.valid >= 0 && ratios.test >= 0 && ratios.valid + ratios.test <= 1)) {
    throw new Error(`movieSplit: bad ratios valid=${ratios.valid} test=${ratios.test}`);
  }
  const u = createHash('sha1').update(`cornell-movie-split:${movieId}`).digest().readUInt32BE(0) / 2 ** 32;
  if (u < ratios.test) return 'test';
  if (u < ratios.test + ratios.valid) return 'valid';
  return 'train';
}

/** Splits anything carrying a movieId by `movieSplit`, keeping the input order inside each split. */
export function splitByMovie<T extends { movieId: string }>(items: readonly T[], ratios: SplitRatios = DEFAULT_SPLIT_RATIOS): Record<Split, T[]> {
  const out: Record<Split, T[]> = { train: [], valid: [], test: [] };
  const memo = new Map<string, Split>();
  for (const item of items) {
    let s = memo.get(item.movieId);
    if (s === undefined) {
      s = movieSplit(item.movieId, ratios);
      memo.set(item.movieId, s);
    }
    out[s].push(item);
  }
  return out;
}

interface CornellDialogueSet {
  dialogues: Record<Split, CornellDialogue[]>;
  summary: CornellLoadSummary;
}

/** loadCornell + split by movie + conversationToDialogues, in file order. */
export async function loadCornellDialogues(
  paths: CornellPaths,
  options: DialogueOptions & { ratios?: SplitRatios; log?: (message: string) => void } = {},
): Promise<CornellDialogueSet> {
  const { conversations, summary } = await loadCornell(paths, { log: options.log });
  const bySplit = splitByMovie(conversations, options.ratios);
  const dialogues = { train: [], valid: [], test: [] } as Record<Split, CornellDialogue[]>;
  for (const s of SPLITS) for (const c of bySplit[s]) dialogues[s].push(...conversationToDialogues(c, options));
  return { dialogues, summary };
}
