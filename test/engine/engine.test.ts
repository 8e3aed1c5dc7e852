import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { EngineClient } from '../../src/engine/client.js';
import { ENGINE_DEFAULTS, type EngineConfig } from '../../src/engine/config.js';
import type { Engine } from '../../src/engine/engine.js';
import { alignPrompt } from '../../src/engine/prompt.js';
import { createEngine } from '../../src/engine/setup.js';
import { cutChunk } from '../../src/engine/stopping.js';
import type { DoneEvent, EngineEvent, ErrorEvent, GenerateRequest } from '../../src/engine/types.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';

interface Harness {
  engine: Engine;
  events: Map<string, EngineEvent[]>;
  text: (id: string) => string;
  done: (id: string) => DoneEvent | ErrorEvent | undefined;
  drain: (maxSteps?: number) => Promise<number>;
}

async function harness(overrides: Partial<EngineConfig> = {}, dir = DEFAULT_MODEL_DIR): Promise<Harness> {
  const events = new Map<string, EngineEvent[]>();
  const { engine } = await createEngine({ ...ENGINE_DEFAULTS, modelDir: dir, intraOpThreads: 1, ...overrides }, (e) => {
    const list = events.get(e.id) ?? [];
    list.push(e);
    events.set(e.id, list);
  });
  return {
    engine,
    events,
    text: (id) => (events.get(id) ?? []).map((e) => (e.type === 'chunk' ? e.text : '')).join(''),
    done: (id) => (events.get(id) ?? []).find((e): e is DoneEvent | ErrorEvent => e.type !== 'chunk'),
    drain: async (maxSteps = 10_000) => {
      let n = 0;
      while (n < maxSteps && (await engine.step())) n++;
      return n;
    },
  };
}

const req = (id: string, extra: Partial<GenerateRequest> = {}): GenerateRequest => ({
  id, prompt: 'In the beginning God created', maxTokens: 24, temperature: 1, seed: 7, ...extra,
});

for (const [name, dir, settings] of [
  ['calm T=1', DEFAULT_MODEL_DIR, { temperature: 1 }],
  ['calm T=0.5 batch N=50', DEFAULT_MODEL_DIR, { temperature: 0.5, poolSize: 50 }],
  ['calm T=0.5 exact', DEFAULT_MODEL_DIR, { temperature: 0.5, sampler: 'exact' as const }],
  ['ar T=1', DEFAULT_AR_MODEL_DIR, { temperature: 1 }],
] as const) {
  test(`${name}: the same seed gives the same text alone and in a busy batch`, async () => {
    const alone = await harness({}, dir);
    alone.engine.submit(req('a', settings));
    await alone.drain();
    const busy = await harness({}, dir);
    for (let i = 0; i < 6; i++) busy.engine.submit(req(`noise${i}`, { ...settings, seed: 100 + i, prompt: `Noise ${i} and more`, maxTokens: 8 + 5 * i }));
    await busy.engine.step(); // 'a' joins a batch that is already decoding
    busy.engine.submit(req('a', settings));
    await busy.drain();
    assert.equal(alone.done('a')?.type, 'done');
    assert.ok(alone.text('a').length > 0);
    assert.equal(busy.text('a'), alone.text('a'));
    if (settings.temperature === 1) {
      // (at T < 1 a peaked model may give the mode whatever the seed)
      const other = await harness({}, dir);
      other.engine.submit(req('a', { ...settings, seed: 8 }));
      await other.drain();
      assert.notEqual(other.text('a'), alone.text('a'), 'another seed gives another text');
    }
  });
}

describe('stopping', () => {
  test('max_tokens counts tokens: the last chunk is cut', async () => {
    const h = await harness();
    h.engine.submit(req('a', { maxTokens: 10 }));
    await h.drain();
    const done = h.done('a') as DoneEvent;
    assert.equal(done.finishReason, 'length');
    assert.equal(done.usage.completionTokens, 10);
    const ids = h.events.get('a')!.flatMap((e) => (e.type === 'chunk' ? e.tokenIds : []));
    assert.equal(ids.length, 10);
  });

  test('chunk cutting: PAD dropped, EOS ends the chunk after it, max_tokens cuts', () => {
    assert.deepEqual(cutChunk([5, 0, 6, 7], 0, 2, 10), { ids: [5, 6, 7], finish: null });
    assert.deepEqual(cutChunk([5, 2, 6, 7], 0, 2, 10), { ids: [5, 2], finish: 'stop' });
    assert.deepEqual(cutChunk([5, 6, 7, 8], 0, 2, 3), { ids: [5, 6, 7], finish: 'length' });
    assert.deepEqual(cutChunk([5, 6, 2, 8], 0, 2, 2), { ids: [5, 6], finish: 'length' });
    // ignore_eos: EOS is dropped like PAD and the chunk does not end the output
    assert.deepEqual(cutChunk([5, 2, 6, 7], 0, 2, 10, true), { ids: [5, 6, 7], finish: null });
    assert.deepEqual(cutChunk([2, 2, 6, 7], 0, 2, 1, true), { ids: [6], finish: 'length' });
  });

  test('a stop string ends the output before it', async () => {
    const probe = await harness();
    probe.engine.submit(req('p', { maxTokens: 40 }));
    await probe.drain();
    const full = probe.text('p');
    const stop = full.slice(10, 13);
    const h = await harness();
    h.engine.submit(req('p', { maxTokens: 40, stop: [stop] }));
    await h.drain();
    assert.equal((h.done('p') as DoneEvent).finishReason, 'stop');
    assert.equal(h.text('p'), full.slice(0, full.indexOf(stop)));
  });
});

describe('scheduling', () => {
  test('cancellation frees the cache row within one step', async () => {
    const h = await harness();
    h.engine.submit(req('a', { maxTokens: 200 }));
    h.engine.submit(req('b', { maxTokens: 200 }));
    await h.engine.step();
    await h.engine.step();
    assert.equal(h.engine.stats.running, 2);
    const before = h.engine.stats.kvUsage;
    h.engine.cancel('a');
    await h.engine.step();
    assert.equal(h.engine.stats.running, 1);
    assert.ok(h.engine.stats.kvUsage < before);
    assert.equal((h.done('a') as DoneEvent).finishReason, 'cancelled');
    h.engine.cancel('b');
    await h.engine.step();
    assert.equal(h.engine.stats.running, 0);
    assert.equal(h.engine.stats.kvUsage, 0);
  });

  test('a long prompt is prefilled in pieces while running streams keep decoding', async () => {
    const h = await harness({ prefillChunk: 8 });
    h.engine.submit(req('short', { maxTokens: 400 }));
    await h.engine.step();
    const long = 'And the earth was without form, and void; and darkness was upon the face of the deep. '.repeat(12);
    h.engine.submit(req('long', { prompt: long, maxTokens: 4 }));
    let steps = 0;
    while (!h.events.get('long')?.some((e) => e.type === 'chunk')) {
      const before = h.events.get('short')!.length;
      await h.engine.step();
      steps++;
      assert.equal(h.events.get('short')!.length, before + 1, 'the running stream got a chunk this step');
    }
    assert.ok(steps > 3, `the long prompt took ${steps} steps to prefill`);
    h.engine.cancel('short');
    await h.drain();
  });

  test('admission: what can never fit is refused with the numbers; what fits waits its turn', async () => {
    const h = await harness({ maxRunning: 1, maxContextTokens: 256 });
    h.engine.submit(req('huge', { maxTokens: 1000 }));
    const refused = h.done('huge') as ErrorEvent;
    assert.equal(refused.code, 'context_length_exceeded');
    assert.match(refused.message, /context is 256 tokens; the prompt has 5 tokens and max_tokens is 1000/);
    h.engine.submit(req('first', { maxTokens: 12 }));
    h.engine.submit(req('second', { maxTokens: 12 }));
    await h.engine.step();
    assert.deepEqual([h.engine.stats.running, h.engine.stats.waiting], [1, 1]);
    await h.drain();
    assert.equal((h.done('second') as DoneEvent).finishReason, 'length');
    assert.ok((h.done('second') as DoneEvent).queueMs > 0);
  });

  test('bad requests are refused without disturbing the others', async () => {
    const h = await harness({ maxWaiting: 2 });
    h.engine.submit(req('ok', { maxTokens: 8 }));
    h.engine.submit(req('hot', { temperature: 1.5 }));
    h.engine.submit(req('neg', { maxTokens: 0 }));
    h.engine.submit(req('oov', { prompt: [1, 2, 999999] }));
    h.engine.submit(req('ok2', { maxTokens: 8 }));
    h.engine.submit(req('full', { maxTokens: 8 }));
    assert.equal((h.done('hot') as ErrorEvent).code, 'temperature_above_one');
    assert.equal((h.done('neg') as ErrorEvent).param, 'max_tokens');
    assert.match((h.done('oov') as ErrorEvent).message, /token id 999999 is outside the vocabulary/);
    assert.equal((h.done('full') as ErrorEvent).code, 'queue_full');
    await h.drain();
    assert.equal((h.done('ok') as DoneEvent).usage.completionTokens, 8);
    assert.equal((h.done('ok2') as DoneEvent).usage.completionTokens, 8);
  });
});

test('prompt alignment policies', () => {
  assert.deepEqual(alignPrompt([1, 5, 6, 7, 8, 9], 4, 0, 'pad'), { ids: [1, 5, 6, 7, 8, 9, 0, 0], padding: 2 });
  assert.deepEqual(alignPrompt([1, 5, 6, 7, 8, 9], 4, 0, 'left'), { ids: [0, 0, 1, 5, 6, 7, 8, 9], padding: 2 });
  assert.deepEqual(alignPrompt([1, 5, 6, 7], 4, 0, 'left'), { ids: [1, 5, 6, 7], padding: 0 });
});

test('the engine thread serves requests and stays responsive to cancel', async () => {
  const client = await EngineClient.start({ ...ENGINE_DEFAULTS, modelDir: DEFAULT_MODEL_DIR, intraOpThreads: 1 });
  try {
    const { text, events } = await client.generate(req('w', { maxTokens: 16 }));
    const done = events.at(-1) as DoneEvent;
    assert.equal(done.type, 'done');
    assert.equal(done.usage.completionTokens, 16);
    assert.ok(text.length > 0);
    const pending = client.generate(req('c', { maxTokens: 4000, prompt: 'x' }));
    setTimeout(() => client.cancel('c'), 50);
    const cancelled = (await pending).events.at(-1) as DoneEvent;
    assert.equal(cancelled.finishReason, 'cancelled');
  } finally {
    await client.close();
  }
});
