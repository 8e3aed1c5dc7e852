// Prompts for the serving benchmark. Lengths are in whitespace-separated words, not tokens:
// the client needs no tokenizer and works against any server. The server's usage chunk gives
// the real token counts (reported as input tokens); for the bundled GPT-2-style tokenizer one
// English word is about 1.3 tokens.
import { createRng } from './load.js';

const WORDS = (
  'the of and to in a is that for it as was with be by on not he this are or his from at which but have an they you were ' +
  'her she there been one all would their we him has when who will more no if out so said what up its about into than them ' +
  'can only other new some could time these two may then do first any my now such like our over man me even most made after ' +
  'also did many before must through back years where much your way well down should because each just those people how too ' +
  'little state good very make world still own see men work long get here between both life being under never day same another ' +
  'know while last might us great old year off come since against go came right used take three house river city water light ' +
  'king land war church music film game song station road school army ship island bridge story field court garden morning'
).split(' ');

/** n prompts of `words` random common words each, seeded. */
export function syntheticPrompts(n: number, words: number, seed: number): string[] {
  const rng = createRng(seed ^ 0x5eed);
  return Array.from({ length: n }, () => Array.from({ length: words }, () => WORDS[Math.floor(rng() * WORDS.length)]!).join(' '));
}

/**
 * n prompts of exactly `words` words cut from the documents: documents shorter than that are
 * skipped; prompt i comes from document i mod D (documents shuffled by the seed) at a seeded
 * random word offset, so more prompts than documents still differ.
 */
export function documentPrompts(texts: readonly string[], n: number, words: number, seed: number): string[] {
  const rng = createRng(seed);
  const docs = texts.map((t) => t.split(/\s+/).filter(Boolean)).filter((w) => w.length >= words);
  if (docs.length === 0) throw new Error(`no document has ${words} words; lower --prompt-len`);
  for (let i = docs.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    [docs[i], docs[j]] = [docs[j]!, docs[i]!];
  }
  return Array.from({ length: n }, (_, i) => {
    const doc = docs[i % docs.length]!;
    const start = Math.floor(rng() * (doc.length - words + 1));
    return doc.slice(start, start + words).join(' ');
  });
}
