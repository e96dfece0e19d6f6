/**
 * The dialogue sets shipped with the online trainer (data/dialogues.json, cut from the Cornell corpus
 * by cut-dialogue-sets.ts): `train` feeds PPO prompts and bootstrap reward pairs, `heldOut` is the
 * gate's fixed prompt and perplexity set. Read once per process.
 */
import { readFile } from 'node:fs/promises';
import type { ChatMessage } from '../../model/tokenizer/index.ts';

interface DialogueSets {
  train: ChatMessage[][];
  heldOut: ChatMessage[][];
}

let cached: Promise<DialogueSets> | null = null;

export function shippedDialogues(): Promise<DialogueSets> {
  cached ??= readFile(new URL('./data/dialogues.json', import.meta.url), 'utf8').then((text) => {
    const { train, heldOut } = JSON.parse(text) as DialogueSets;
    return { train, heldOut };
  });
  return cached;
}
