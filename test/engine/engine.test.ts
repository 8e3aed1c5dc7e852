import assert from 'node:assert/strict';
import { afterEach, describe, test } from 'node:test';
import { EngineClient } from '../../src/engine/client.js';
import { ENGINE_DEFAULTS, type EngineConfig } from '../../src/engine/config.js';
import type { Engine, StepReport } from '../../src/engine/engine.js';
import { EngineRequestError, type InputProcessor } from '../../src/engine/input.js';
import { alignPrompt } from '../../src/engine/prompt.js';
import { createEngine } from '../../src/engine/setup.js';
import { cutChunk } from '../../src/engine/stopping.js';
import type { ChunkEvent, DoneEvent, EngineEvent, ErrorEvent, GenerateRequest } from '../../src/engine/types.js';
import { loadBundle } from '../../src/model/bundle.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { type Device, isDevice } from '../../src/model/sessions.js';

/** CALM_TEST_DEVICE=webgpu runs these tests on the WebGPU device (test/run.mjs does, where one exists). */
const TEST_DEVICE: Device = isDevice(process.env.CALM_TEST_DEVICE ?? 'cpu') ? (process.env.CALM_TEST_DEVICE as Device ?? 'cpu') : 'cpu';

/** Engines a test made: released after it, so that device memory does not pile up over the file. */
const live: Engine[] = [];
afterEach(async () => {
  for (const engine of live.splice(0)) await engine.release();
});

interface Harness {
  engine: Engine;
  input: InputProcessor;
  events: Map<string, EngineEvent[]>;
  reports: StepReport[];
  /** validates, tokenizes and submits; a refusal is recorded as the request's error event */
  submit: (r: GenerateRequest) => void;
  text: (id: string) => string;
  done: (id: string) => DoneEvent | ErrorEvent | undefined;
  drain: (maxSteps?: number) => Promise<number>;
}

async function harness(overrides: Partial<EngineConfig> = {}, dir = DEFAULT_MODEL_DIR): Promise<Harness> {
  const events = new Map<string, EngineEvent[]>();
  const reports: StepReport[] = [];
  const record = (e: EngineEvent) => {
    const list = events.get(e.id) ?? [];
    list.push(e);
    events.set(e.id, list);
  };
  // on a device, a small pool: lavapipe's device memory is host memory, and tests need little
  const pool = TEST_DEVICE === 'cpu' ? {} : { kvCacheBytes: 64 << 20 };
  const { engine, input } = await createEngine({ ...ENGINE_DEFAULTS, modelDir: dir, device: TEST_DEVICE, intraOpThreads: 1, ...pool, ...overrides }, (r) => {
    reports.push(r);
    r.events.forEach(record);
  });
  live.push(engine);
  return {
    engine,
    input,
    events,
    reports,
    submit: (r) => {
      try {
        engine.submit(input.prepare(r));
      } catch (err) {
        if (!(err instanceof EngineRequestError)) throw err;
        record({ type: 'error', id: r.id, code: err.code, message: err.message, ...(err.param ? { param: err.param } : {}) });
      }
    },
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
    // (the exact sampler hits its draw budget on the shipped model: a smaller one keeps the test
    // short, and shorter still on lavapipe, where a batch of draws takes a second)
    const config = { exactMaxDraws: TEST_DEVICE === 'webgpu' ? 128 : 512 };
    const alone = await harness(config, dir);
    alone.submit(req('a', settings));
    await alone.drain();
    const busy = await harness(config, dir);
    for (let i = 0; i < 6; i++) busy.submit(req(`noise${i}`, { ...settings, seed: 100 + i, prompt: `Noise ${i} and more`, maxTokens: 8 + 5 * i }));
    await busy.engine.step(); // 'a' joins a batch that is already decoding
    busy.submit(req('a', settings));
    await busy.drain();
    assert.equal(alone.done('a')?.type, 'done');
    assert.ok(alone.text('a').length > 0);
    assert.equal(busy.text('a'), alone.text('a'));
    if (settings.temperature === 1) {
      // (at T < 1 a peaked model may give the mode whatever the seed)
      const other = await harness(config, dir);
      other.submit(req('a', { ...settings, seed: 8 }));
      await other.drain();
      assert.notEqual(other.text('a'), alone.text('a'), 'another seed gives another text');
    }
  });
}

describe('stopping', () => {
  test('max_tokens counts tokens: the last chunk is cut', async () => {
    const h = await harness();
    h.submit(req('a', { maxTokens: 10 }));
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
    // ignore_eos: every token counts, PAD and EOS included, and EOS does not end the output
    assert.deepEqual(cutChunk([5, 2, 6, 7], 0, 2, 10, true), { ids: [5, 2, 6, 7], finish: null });
    assert.deepEqual(cutChunk([2, 0, 6, 7], 0, 2, 1, true), { ids: [2], finish: 'length' });
  });

  test('a stop string ends the output before it', async () => {
    const probe = await harness();
    probe.submit(req('p', { maxTokens: 40 }));
    await probe.drain();
    const full = probe.text('p');
    const stop = full.slice(10, 13);
    const h = await harness();
    h.submit(req('p', { maxTokens: 40, stop: [stop] }));
    await h.drain();
    assert.equal((h.done('p') as DoneEvent).finishReason, 'stop');
    assert.equal(h.text('p'), full.slice(0, full.indexOf(stop)));
  });
});

describe('scheduling', () => {
  test('cancellation frees the KV blocks within one step', async () => {
    const h = await harness();
    h.submit(req('a', { maxTokens: 200 }));
    h.submit(req('b', { maxTokens: 200 }));
    await h.engine.step();
    await h.engine.step();
    assert.equal(h.engine.stats.running, 2);
    const before = h.engine.stats.blocksUsed;
    h.engine.cancel('a');
    await h.engine.step();
    assert.equal(h.engine.stats.running, 1);
    assert.ok(h.engine.stats.blocksUsed < before);
    assert.equal((h.done('a') as DoneEvent).finishReason, 'cancelled');
    h.engine.cancel('b');
    await h.engine.step();
    assert.equal(h.engine.stats.running, 0);
    assert.equal(h.engine.stats.blocksUsed, 0);
  });

  test('a long prompt is prefilled in pieces while running streams keep decoding', async () => {
    const h = await harness({ maxPrefillPositions: 8 });
    h.submit(req('short', { maxTokens: 400 }));
    await h.engine.step();
    const long = 'And the earth was without form, and void; and darkness was upon the face of the deep. '.repeat(12);
    h.submit(req('long', { prompt: long, maxTokens: 4 }));
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
    h.submit(req('huge', { maxTokens: 1000 }));
    const refused = h.done('huge') as ErrorEvent;
    assert.equal(refused.code, 'context_length_exceeded');
    assert.match(refused.message, /context is 256 tokens; the prompt has 5 tokens and max_tokens is 1000/);
    h.submit(req('first', { maxTokens: 12 }));
    h.submit(req('second', { maxTokens: 12 }));
    await h.engine.step();
    assert.deepEqual([h.engine.stats.running, h.engine.stats.waiting], [1, 1]);
    await h.drain();
    assert.equal((h.done('second') as DoneEvent).finishReason, 'length');
    assert.ok((h.done('second') as DoneEvent).queueMs > 0);
  });

  test('bad requests are refused without disturbing the others', async () => {
    const h = await harness();
    h.submit(req('ok', { maxTokens: 8 }));
    h.submit(req('hot', { temperature: 1.5 }));
    h.submit(req('neg', { maxTokens: 0 }));
    h.submit(req('oov', { prompt: [1, 2, 999999] }));
    h.submit(req('ok2', { maxTokens: 8 }));
    assert.equal((h.done('hot') as ErrorEvent).code, 'temperature_above_one');
    assert.equal((h.done('neg') as ErrorEvent).param, 'max_tokens');
    assert.match((h.done('oov') as ErrorEvent).message, /token id 999999 is outside the vocabulary/);
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

describe('failure domain', () => {
  test('a model call that fails fails the sequences it carried; the others finish', async () => {
    const poison = 4000;
    const h = await harness({ faults: { failOnToken: poison } });
    h.submit(req('a', { maxTokens: 24 }));
    h.submit(req('bad', { prompt: [5, 6, poison, 7, 8], maxTokens: 24 }));
    h.submit(req('b', { maxTokens: 24, seed: 3 }));
    await h.drain();
    const bad = h.done('bad') as ErrorEvent;
    assert.equal(bad.type, 'error');
    assert.equal(bad.code, 'engine_error');
    assert.match(bad.message, /injected fault/);
    // 'a' and 'b' shared the failing prefill call with 'bad' (all three were admitted together): they fail too ...
    // ... but the loop goes on, later requests run, and every block is back.
    h.submit(req('later', { maxTokens: 12 }));
    await h.drain();
    assert.equal((h.done('later') as DoneEvent).usage.completionTokens, 12);
    assert.equal(h.engine.stats.blocksUsed, 0);
    assert.equal(h.engine.stats.running, 0);
  });

  test('a fault in a decode step spares the sequences of the other call', async () => {
    const poison = 4000;
    const h = await harness({ faults: { failOnToken: poison } });
    h.submit(req('a', { maxTokens: 40 }));
    await h.engine.step();
    await h.engine.step(); // 'a' decodes
    h.submit(req('bad', { prompt: [5, 6, 7, 8, 9, 10, 11, poison, 5, 6, 7, 8, 9], maxTokens: 8 }));
    await h.drain();
    assert.equal(h.done('bad')?.type, 'error');
    assert.equal((h.done('a') as DoneEvent).usage.completionTokens, 40);
  });

  test('the same seed gives the same text with and without forced preemption', async () => {
    // About 7 (CALM) or 9 (AR) blocks of 4 positions each: four sequences cannot all grow in a pool of 16.
    for (const [dir, settings, maxTokens] of [
      [DEFAULT_MODEL_DIR, { temperature: 1 }, 96], [DEFAULT_MODEL_DIR, { temperature: 0.5, poolSize: 40 }, 96], [DEFAULT_AR_MODEL_DIR, { temperature: 1 }, 24],
    ] as const) {
      const ids = ['p0', 'p1', 'p2', 'p3'];
      const run = async (overrides: Partial<EngineConfig>) => {
        const h = await harness(overrides, dir);
        ids.forEach((id, i) => h.submit(req(id, { ...settings, seed: 20 + i, maxTokens, ignoreEos: true, prompt: `Prompt ${i}: and it came to pass` })));
        await h.drain();
        return h;
      };
      const roomy = await run({});
      const m = loadBundle(dir).manifest;
      const tight = await run({ kvCacheBytes: 16 * 4 * m.num_layers * 2 * m.num_kv_heads * m.head_dim * 4, blockSize: 4 });
      const what = `${dir.split('/').pop()} ${JSON.stringify(settings)}`;
      assert.ok(tight.engine.stats.preemptions > 0, `${what}: the tight pool preempted`);
      for (const id of ids) {
        assert.equal((tight.done(id) as DoneEvent).finishReason, 'length', `${what} ${id} finished`);
        assert.equal(tight.text(id), roomy.text(id), `${what} ${id}: same text after preemption`);
      }
      assert.ok(ids.some((id) => (tight.done(id) as DoneEvent).preemptions > 0));
      assert.equal(tight.engine.stats.blocksUsed, 0);
    }
  });

  test('n copies of one prompt share its prefill, and give the same texts as when run alone', async () => {
    const prompt = 'And the earth was without form, and void; and darkness was upon the face of the deep. '.repeat(6);
    const alone = await Promise.all([0, 1, 2].map(async (stream) => {
      const h = await harness();
      h.submit(req('x', { prompt, seed: 4, seedStream: stream, maxTokens: 20 }));
      await h.drain();
      return h.text('x');
    }));
    const h = await harness();
    [0, 1, 2].forEach((stream) => h.submit(req(`c${stream}`, { prompt, seed: 4, seedStream: stream, maxTokens: 20 })));
    await h.drain();
    [0, 1, 2].forEach((stream) => assert.equal(h.text(`c${stream}`), alone[stream]));
    const cached = [1, 2].map((i) => (h.done(`c${i}`) as DoneEvent).cachedPositions);
    assert.ok(cached.every((c) => c >= 16), `the copies found their prompt's full blocks in the cache (${cached})`);
    assert.ok(h.engine.stats.prefixHits > 0);
    assert.ok(h.engine.stats.prefixHits <= h.engine.stats.prefixQueries);
  });
});

describe('sampling budget', () => {
  test('a pool larger than the step budget continues over several steps, slows no one, and keeps its text', async () => {
    const unlimited = await harness({ maxStepDraws: 100_000 });
    unlimited.submit(req('pool', { temperature: 0.5, poolSize: 600, maxTokens: 8 }));
    await unlimited.drain();
    const h = await harness({ maxStepDraws: 100 });
    h.submit(req('fast', { maxTokens: 400 }));
    h.submit(req('pool', { temperature: 0.5, poolSize: 600, maxTokens: 8 }));
    let steps = 0;
    while (!h.done('pool')) {
      const before = h.events.get('fast')?.length ?? 0;
      await h.engine.step();
      steps++;
      if (steps > 1) assert.equal(h.events.get('fast')!.length, before + 1, 'the T = 1 stream got its chunk every step');
      const timing = h.reports.at(-1)!.timing!;
      assert.ok(timing.draws <= 100 + 2, `a step drew ${timing.draws} samples`);
    }
    assert.ok(steps >= 2 * 6, `the pool of 600 took ${steps} steps for 2 chunks`);
    assert.equal(h.text('pool'), unlimited.text('pool'));
    h.engine.cancel('fast');
    await h.drain();
  });

  test('edge temperatures are served, never wedge the loop', async () => {
    for (const dir of [DEFAULT_MODEL_DIR, DEFAULT_AR_MODEL_DIR]) {
      const h = await harness({}, dir);
      const edges = [-0, 0, 1e-300, 5e-324, Number.MIN_VALUE, 1e-7, 1];
      edges.forEach((t, i) => h.submit(req(`t${i}`, { temperature: t, maxTokens: 8, poolSize: 20, sampler: i >= 2 && i % 2 ? 'exact' : 'batch' })));
      const steps = await h.drain(400);
      assert.ok(steps < 400, 'the loop drained');
      edges.forEach((t, i) => assert.equal((h.done(`t${i}`) as DoneEvent).finishReason, 'length', `T = ${t}`));
      assert.equal(h.text('t0'), h.text('t1'), 'T = -0 is greedy, like T = 0');
    }
  });
});

describe('what the pool can tell', () => {
  test('confidence: every CALM chunk carries its pool frequency; top_p cuts the pool; refusals name the field', async () => {
    const h = await harness();
    h.submit(req('c', { maxTokens: 16, poolSize: 64, confidence: true }));
    h.submit(req('p', { maxTokens: 16, poolSize: 64, topP: 0.5, temperature: 0.7 }));
    h.submit(req('x', { sampler: 'exact', temperature: 0.5, topP: 0.9 }));
    h.submit(req('y', { sampler: 'exact', temperature: 0.5, confidence: true }));
    h.submit(req('z', { topP: 0 }));
    await h.drain();
    const chunks = (h.events.get('c') ?? []).filter((e): e is ChunkEvent => e.type === 'chunk');
    assert.equal(chunks.length, 4);
    for (const c of chunks) {
      const { frequency, stderr, pool } = c.confidence!;
      assert.equal(pool, 64);
      assert.ok(frequency > 0 && frequency <= 1 && Number.isInteger(frequency * 64));
      assert.ok(Math.abs(stderr - Math.sqrt((frequency * (1 - frequency)) / 64)) < 1e-12);
    }
    assert.ok((h.events.get('p') ?? []).every((e) => e.type !== 'chunk' || e.confidence === undefined), 'no confidence unless asked');
    assert.equal((h.done('p') as DoneEvent).finishReason, 'length');
    for (const [id, param] of [['x', 'top_p'], ['y', 'confidence'], ['z', 'top_p']] as const) {
      const e = h.done(id) as ErrorEvent;
      assert.equal(e.type, 'error');
      assert.equal(e.param, param);
    }
    const ar = await harness({}, DEFAULT_AR_MODEL_DIR);
    ar.submit(req('a', { confidence: true }));
    ar.submit(req('b', { topP: 0.5, maxTokens: 8 }));
    await ar.drain();
    assert.equal((ar.done('a') as ErrorEvent).param, 'confidence');
    assert.equal((ar.done('b') as DoneEvent).finishReason, 'length');
  });
});
