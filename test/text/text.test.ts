import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { TextTokenizer } from '../../src/model/tokenizer.js';
import { IncrementalDetokenizer } from '../../src/text/detokenizer.js';
import { StopMatcher } from '../../src/text/stop.js';

const tok = new TextTokenizer(join(DEFAULT_MODEL_DIR, 'tokenizer.json'), { pad: 0, bos: 1, eos: 2 });

function streamInChunks(ids: number[], k: number): string[] {
  const detok = new IncrementalDetokenizer(tok);
  const deltas: string[] = [];
  for (let i = 0; i < ids.length; i += k) deltas.push(detok.push(ids.slice(i, i + k)));
  deltas.push(detok.flush());
  return deltas;
}

describe('incremental detokenizer', () => {
  const text = 'In the beginning 😀 God créated «the» heaven — and 東京.\nAmen.';
  const ids = tok.encode(text);

  test('a long stream slides its window without losing or repeating text', () => {
    const long = (text + ' ').repeat(20);
    assert.equal(streamInChunks(tok.encode(long), 4).join(''), long);
  });

  for (const k of [1, 2, 3, 4, 7]) {
    test(`deltas of ${k}-token chunks concatenate to the full text`, () => {
      assert.equal(streamInChunks(ids, k).join(''), text);
    });
  }

  test('never emits half a character: a split emoji waits for its last byte', () => {
    const emoji = tok.encode('😀');
    assert.ok(emoji.length > 1, 'the emoji spans several byte tokens');
    const detok = new IncrementalDetokenizer(tok);
    for (const id of emoji.slice(0, -1)) assert.equal(detok.push([id]), '');
    assert.equal(detok.push(emoji.slice(-1)), '😀');
  });

  test('special tokens produce no text', () => {
    const detok = new IncrementalDetokenizer(tok);
    assert.equal(detok.push([1, ...tok.encode('Hi'), 0, 2]), 'Hi');
  });
});

describe('stop strings', () => {
  test('a stop string inside one delta cuts the text before it', () => {
    const m = new StopMatcher(['\n\n']);
    assert.deepEqual(m.push('Amen.\n\nGenesis'), { text: 'Amen.', stopped: '\n\n' });
  });

  test('a stop string straddling deltas is found and nothing of it is emitted', () => {
    const m = new StopMatcher(['END']);
    const a = m.push('the E');
    assert.deepEqual(a, { text: 'the ', stopped: null });
    const b = m.push('N');
    assert.deepEqual(b, { text: '', stopped: null });
    assert.deepEqual(m.push('D of it'), { text: '', stopped: 'END' });
  });

  test('held-back text is released when it turns out not to be a stop string', () => {
    const m = new StopMatcher(['END']);
    assert.equal(m.push('the EN').text, 'the ');
    assert.deepEqual(m.push('ZYMES'), { text: 'ENZYMES', stopped: null });
    assert.equal(m.flush(), '');
  });

  test('the earliest of several stop strings wins', () => {
    const m = new StopMatcher(['b', 'a']);
    assert.deepEqual(m.push('xxabxx'), { text: 'xx', stopped: 'a' });
  });

  test('flush returns a held tail at the end of the stream', () => {
    const m = new StopMatcher(['END']);
    assert.equal(m.push('so E').text, 'so ');
    assert.equal(m.flush(), 'E');
  });
});
