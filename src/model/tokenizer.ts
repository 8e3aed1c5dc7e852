// Text <-> token ids through the bundle's tokenizer.json (@huggingface/tokenizers, pure JS).
import { readFileSync } from 'node:fs';
import { Tokenizer } from '@huggingface/tokenizers';
import type { SpecialTokens } from './bundle.js';

export class TextTokenizer {
  private readonly tok: Tokenizer;
  private readonly special: Set<number>;

  constructor(path: string, special: SpecialTokens) {
    try {
      this.tok = new Tokenizer(JSON.parse(readFileSync(path, 'utf8')) as object, {});
    } catch (err) {
      throw new Error(`cannot load the tokenizer ${path}: ${(err as Error).message}`, { cause: err });
    }
    this.special = new Set([special.pad, special.bos, special.eos]);
  }

  encode(text: string): number[] {
    return text.length === 0 ? [] : this.tok.encode(text, { add_special_tokens: false }).ids;
  }

  /** Decodes, dropping special tokens (PAD, BOS, EOS never appear in returned text). */
  decode(ids: readonly number[]): string {
    const kept = ids.filter((id) => !this.special.has(id));
    return kept.length === 0 ? '' : this.tok.decode(kept, { skip_special_tokens: true, clean_up_tokenization_spaces: false });
  }

  /** UTF-8 bytes of the longest vocabulary entry: an upper bound on the text one token stands for. */
  get maxTokenBytes(): number {
    let max = 1;
    for (const token of this.tok.get_vocab(true).keys()) max = Math.max(max, Buffer.byteLength(token, 'utf8'));
    return max;
  }

  get vocabSize(): number {
    return this.tok.get_vocab(true).size;
  }
}
