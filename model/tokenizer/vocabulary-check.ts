/** The consistency check of a vocabulary's id layout, run when a tokenizer is built. */
import { pairKey } from './apply-merges.ts';
import { isKnownPretokenizer } from './pretokenize.ts';
import { BYTE_TOKEN_COUNT, MAX_VOCAB_SIZE, SPECIAL_TOKEN_TEXTS } from './special-tokens.ts';

/** A learned merge: the two token ids whose concatenation becomes a new token. */
export type MergePair = readonly [number, number];

/** Everything that places tokens at ids; the default is our own layout. */
export interface VocabularyLayout {
  pretokenizer: string;
  vocabSize: number;
  byteIds: readonly number[];
  specialTokens: readonly { id: number; text: string }[];
  /** Id made by merge i. */
  mergeIds: readonly number[];
}

/**
 * Checks a vocabulary: every id in [0, vocabSize) is exactly one of a byte, a special token or the
 * result of a merge (two merges may make the same id only if they spell the same bytes); merge i only
 * uses bytes and tokens made by earlier merges, never special tokens, and no pair twice; the six chat
 * tokens are special tokens. The "earlier" rule also guarantees what `applyMerges` relies on.
 */
export function validateVocabulary(merges: readonly MergePair[], layout: VocabularyLayout): void {
  const { vocabSize } = layout;
  if (!layout.pretokenizer || !isKnownPretokenizer(layout.pretokenizer)) throw new Error(`unknown pre-tokenizer '${layout.pretokenizer}'`);
  if (!Number.isInteger(vocabSize) || vocabSize > MAX_VOCAB_SIZE) {
    throw new Error(`a vocabulary of ${vocabSize} tokens is above the maximum of ${MAX_VOCAB_SIZE}`);
  }
  if (layout.mergeIds.length !== merges.length) throw new Error('every merge needs the id of the token it makes');
  const kind = new Array<string | undefined>(vocabSize);
  const claim = (id: number, what: string) => {
    if (!Number.isInteger(id) || id < 0 || id >= vocabSize) throw new Error(`${what} has id ${JSON.stringify(id)}, outside [0, ${vocabSize})`);
    if (kind[id] !== undefined) throw new Error(`${what} has id ${id}, already used by ${kind[id]}`);
    kind[id] = what;
  };
  if (layout.byteIds.length !== BYTE_TOKEN_COUNT) throw new Error(`a byte-level vocabulary needs ${BYTE_TOKEN_COUNT} byte tokens`);
  layout.byteIds.forEach((id, b) => claim(id, `byte ${b}`));
  for (const t of layout.specialTokens) claim(t.id, `special token ${JSON.stringify(t.text)}`);
  const specialTexts = new Set(layout.specialTokens.map((t) => t.text));
  for (const text of SPECIAL_TOKEN_TEXTS) if (!specialTexts.has(text)) throw new Error(`the chat special token ${text} is missing`);

  const made = new Set<number>(layout.byteIds);
  const seen = new Set<number>();
  const spelled = new Map<number, string>();
  const spell = (id: number): string => spelled.get(id) ?? String(layout.byteIds.indexOf(id));
  merges.forEach((pair, i) => {
    const ownId = layout.mergeIds[i];
    for (const id of pair) {
      if (!Number.isInteger(id) || id < 0) {
        throw new Error(`merges[${i}] contains ${JSON.stringify(id)}, which is not a token id`);
      }
      if (kind[id]?.startsWith('special')) {
        throw new Error(`merges[${i}] references special token id ${id}; special tokens cannot be merged`);
      }
      if (!made.has(id)) {
        throw new Error(`merges[${i}] (token ${ownId}) references unknown id ${id}: merges may only use bytes and earlier merges`);
      }
    }
    const key = pairKey(pair[0], pair[1]);
    if (seen.has(key)) throw new Error(`merges[${i}] repeats the pair [${pair[0]}, ${pair[1]}]`);
    seen.add(key);
    const bytes = `${spell(pair[0])},${spell(pair[1])}`;
    if (kind[ownId] === undefined || !kind[ownId]!.startsWith('merge')) claim(ownId, `merges[${i}]`);
    else if (spelled.get(ownId) !== bytes) throw new Error(`merges[${i}] makes id ${ownId}, which ${kind[ownId]} made with other bytes`);
    spelled.set(ownId, bytes);
    made.add(ownId);
  });
  for (let id = 0; id < vocabSize; id++) {
    if (kind[id] === undefined) throw new Error(`token id ${id} is neither a byte, a special token nor made by a merge`);
  }
}
