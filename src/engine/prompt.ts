// Prompt alignment for CALM: the backbone consumes whole chunks of K tokens, so a prompt whose
// length is not a multiple of K needs a policy (docs/calm.md section 3).
//  - "pad" (the authors' choice): right-pad the last chunk with PAD; PAD is stripped from the output.
//  - "left": left-pad the first chunk with PAD instead, so the prompt's last token ends a chunk
//    and generation continues right after it, as in training; the PAD sits at the very start.

export type PromptPolicy = 'pad' | 'left';
export const PROMPT_POLICIES: readonly PromptPolicy[] = ['pad', 'left'];

export interface AlignedPrompt {
  /** flat chunk ids, a multiple of K */
  ids: number[];
  /** PAD tokens added */
  padding: number;
}

export function alignPrompt(tokens: readonly number[], k: number, pad: number, policy: PromptPolicy): AlignedPrompt {
  const padding = (k - (tokens.length % k)) % k;
  const fill = new Array<number>(padding).fill(pad);
  return { ids: policy === 'pad' ? [...tokens, ...fill] : [...fill, ...tokens], padding };
}
