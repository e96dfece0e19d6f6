/**
 * A policy checkpoint as a Hugging Face GPT-2 directory that `transformers` loads as
 * `GPT2LMHeadModel` + `AutoTokenizer` with no code of ours: config.json, model.safetensors (GPT-2's
 * tensor names, Conv1D (in, out) layout, lm_head tied so not stored), tokenizer.json,
 * tokenizer_config.json with our chat template, special_tokens_map.json, generation_config.json.
 * Written atomically.
 */
import { join } from 'node:path';
import { writeDirAtomically, writeFileDurable } from '../checkpoint/atomic-dir.ts';
import { encodeSafetensors, type RawTensor } from '../checkpoint/index.ts';
import { loadModel } from '../checkpoint/gpt-checkpoint.ts';
import { CHAT_TEMPLATE } from './chat-template.ts';
import { hfConfigJson, hfTensorNames } from './gpt2-layout.ts';
import { HfFormatError, toHfTokenizerJson } from './hf-tokenizer.ts';

interface ExportResult {
  out: string;
  tensors: number;
  vocabSize: number;
}

export async function exportHf(checkpointDir: string, out: string): Promise<ExportResult> {
  const { model, tokenizer, meta } = await loadModel(checkpointDir);
  try {
    if (meta.kind !== 'policy') throw new HfFormatError(`${checkpointDir} is a ${meta.kind} checkpoint; only a policy exports as GPT2LMHeadModel`);
    const names = hfTensorNames(model.config.nLayers);
    const tensors: RawTensor[] = [];
    for (const [name, v] of model.namedWeights()) {
      const hfName = names.get(name);
      if (hfName === undefined) throw new HfFormatError(`weight '${name}' has no GPT-2 counterpart`);
      tensors.push({ name: hfName, dtype: 'float32', shape: [...v.shape], data: (await v.data()) as Float32Array });
    }
    const weights = encodeSafetensors(tensors, { format: 'pt' });
    const s = tokenizer.special;
    const specialText = (id: number) => tokenizer.decode([id]);
    const hfTokenizer = toHfTokenizerJson(tokenizer);
    const addedTokensDecoder = Object.fromEntries(
      (hfTokenizer.added_tokens as { id: number }[]).map(({ id, ...rest }) => [String(id), rest]),
    );
    const tokenizerConfig = {
      tokenizer_class: 'PreTrainedTokenizerFast',
      bos_token: specialText(s.bos),
      eos_token: specialText(s.eot),
      pad_token: specialText(s.pad),
      unk_token: null,
      add_bos_token: false,
      add_eos_token: false,
      add_prefix_space: false,
      clean_up_tokenization_spaces: false,
      model_max_length: model.config.context,
      chat_template: CHAT_TEMPLATE,
      added_tokens_decoder: addedTokensDecoder,
    };
    const specialTokensMap = { bos_token: specialText(s.bos), eos_token: specialText(s.eot), pad_token: specialText(s.pad) };
    const generationConfig = { bos_token_id: s.bos, eos_token_id: s.eot, pad_token_id: s.pad };
    const json = (x: unknown) => JSON.stringify(x, null, 2) + '\n';
    await writeDirAtomically(out, async (tmp) => {
      await writeFileDurable(join(tmp, 'model.safetensors'), weights.bytes);
      await writeFileDurable(join(tmp, 'config.json'), json(hfConfigJson(model.config, s)));
      await writeFileDurable(join(tmp, 'generation_config.json'), json(generationConfig));
      await writeFileDurable(join(tmp, 'tokenizer.json'), json(hfTokenizer));
      await writeFileDurable(join(tmp, 'tokenizer_config.json'), json(tokenizerConfig));
      await writeFileDurable(join(tmp, 'special_tokens_map.json'), json(specialTokensMap));
    });
    return { out, tensors: tensors.length, vocabSize: tokenizer.vocabSize };
  } finally {
    model.dispose();
  }
}
