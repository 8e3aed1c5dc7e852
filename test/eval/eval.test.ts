import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { evalCommand, parseEvalArgs } from '../../src/commands/eval.js';
import { EVAL_DEFAULTS, EvalError, type EvalOptions, type EvalReport, runEval } from '../../src/eval/run.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';

const DATA = fileURLToPath(new URL('./fixtures/documents.jsonl', import.meta.url));

const options = (extra: Partial<EvalOptions> = {}): EvalOptions => ({ ...EVAL_DEFAULTS, data: DATA, modelDir: DEFAULT_MODEL_DIR, threads: 1, block: 64, ...extra });

/** Everything but the wall-clock time. */
function figures(r: EvalReport): Omit<EvalReport, 'elapsed_s'> {
  const { elapsed_s: _, ...rest } = r;
  return rest;
}

describe('calm eval on the default CALM bundle', () => {
  test('same seed and prompt policy, same figures; the batch size does not change them', async () => {
    const a = await runEval(options({ seed: 3, positions: 'all', batchWindows: 16 }), null);
    const b = await runEval(options({ seed: 3, positions: 'all', batchWindows: 1 }), null);
    assert.deepEqual(figures(a), figures(b));
    assert.equal(a.documents, 4);
    // every token position with four tokens after it
    assert.ok(a.brier!.positions! > 3 * (a.windows ?? 0) * 4);
  });

  test('both prompt policies give reproducible figures over the same positions', async () => {
    const pad = await runEval(options({ seed: 1, positions: 'all', promptPolicy: 'pad' }), null);
    const left = await runEval(options({ seed: 1, positions: 'all', promptPolicy: 'left' }), null);
    const leftAgain = await runEval(options({ seed: 1, positions: 'all', promptPolicy: 'left' }), null);
    assert.deepEqual(figures(left), figures(leftAgain));
    assert.equal(pad.brier!.positions, left.brier!.positions);
    assert.equal(pad.settings.prompt_policy, 'pad');
    assert.equal(left.settings.prompt_policy, 'left');
  });

  test('aligned positions are the chunk boundaries: the same figures as the offset-0 share of all positions', async () => {
    const r = await runEval(options(), null);
    const all = await runEval(options({ positions: 'all' }), null);
    assert.ok(r.brier!.positions! * 3 < all.brier!.positions!);
    const { offset, ...aligned } = all.brier_by_offset![0]!;
    assert.equal(offset, 0);
    assert.deepEqual(aligned, r.brier);
    assert.equal(all.brier_by_offset!.reduce((n, f) => n + f.positions!, 0), all.brier!.positions);
    for (let n = 1; n <= 4; n++) {
      assert.ok(r.brier![`brier${n}`]! >= -1 && r.brier![`brier${n}`]! <= 1);
      assert.ok(r.brier![`brier${n}_se`]! >= 0);
    }
  });

  test('sampler settings reach the samples: T = 0.5 with the batch sampler is reproducible and differs from T = 1', async () => {
    const t1 = await runEval(options({ maxDocs: 2 }), null);
    const half = await runEval(options({ maxDocs: 2, temperature: 0.5, poolSize: 16 }), null);
    const halfAgain = await runEval(options({ maxDocs: 2, temperature: 0.5, poolSize: 16 }), null);
    assert.deepEqual(figures(half), figures(halfAgain));
    assert.notDeepEqual(half.brier, t1.brier);
  });

  test('the autoencoder reconstructs the text', async () => {
    const r = await runEval(options({ metric: 'reconstruction' }), null);
    const x = r.reconstruction!;
    assert.ok(x.token_accuracy > 0.98, `token accuracy ${x.token_accuracy}`);
    assert.ok(x.chunk_accuracy > 0.9 && x.chunk_accuracy <= x.token_accuracy + 1e-12);
    // every document + EOS, PAD-filled to whole chunks: PAD is not counted as a token
    assert.ok(x.tokens > 300 && x.chunks * 4 >= x.tokens && x.chunks * 4 < x.tokens + 4 * 4);
  });
});

describe('calm eval on the AR baseline', () => {
  test('the two-sample estimate agrees with the one from probabilities, and the seed matters', async () => {
    const a = await runEval(options({ modelDir: DEFAULT_AR_MODEL_DIR, seed: 5 }), null);
    const b = await runEval(options({ modelDir: DEFAULT_AR_MODEL_DIR, seed: 6 }), null);
    const two = a.brier!;
    const exact = a.brier_exact!;
    assert.equal(two.positions, exact.positions);
    const gap = Math.abs(two.brier1! - exact.brier1!);
    assert.ok(gap < 4 * Math.hypot(two.brier1_se!, exact.brier1_se!), `${two.brier1} vs ${exact.brier1}`);
    assert.ok(exact.brier1! > 0.05, 'the trained baseline predicts its own corpus better than chance');
    assert.deepEqual(a.brier_exact!.brier1, b.brier_exact!.brier1); // no sampling in exact Brier-1
    assert.notDeepEqual(a.brier, b.brier);
  });

  test('reconstruction needs an autoencoder', async () => {
    await assert.rejects(runEval(options({ modelDir: DEFAULT_AR_MODEL_DIR, metric: 'reconstruction' }), null), EvalError);
  });
});

describe('the eval command', () => {
  function capture() {
    const out: string[] = [];
    const err: string[] = [];
    return { out, err, io: { stdout: (s: string) => void out.push(s), stderr: (s: string) => void err.push(s), stderrIsTTY: false } };
  }

  test('--json prints one object with every figure; progress goes to stderr', async () => {
    const c = capture();
    const code = await evalCommand(['--data', DATA, '--max-docs', '2', '--block', '64', '--threads', '1', '--json'], c.io);
    assert.equal(code, 0);
    const r = JSON.parse(c.out.join('')) as EvalReport;
    assert.equal(r.model, 'calm-k4');
    assert.equal(r.documents, 2);
    for (const key of ['brierlm', 'brier1', 'brier1_se', 'brier4', 'brier4_se', 'positions']) assert.equal(typeof r.brier![key], 'number', key);
    assert.match(c.err.join(''), /calm-k4 brier: 0\/\d+ windows/);
  });

  test('the table form names the figures', async () => {
    const c = capture();
    assert.equal(await evalCommand(['--data', DATA, '--model', DEFAULT_AR_MODEL_DIR, '--max-docs', '1', '--block', '64', '--threads', '1', '--no-progress'], c.io), 0);
    const text = c.out.join('');
    assert.match(text, /Brier-1 +-?\d\.\d{4} ± \d\.\d{4}/);
    assert.match(text, /from the model's probabilities/);
    assert.deepEqual(c.err, []);
  });

  test('bad options are refused with exit status 2 and a reason', async () => {
    const SHORT = join(mkdtempSync(join(tmpdir(), 'calm-eval-')), 'short.jsonl');
    writeFileSync(SHORT, '{"text": "Amen."}\n');
    for (const [args, reason] of [
      [[], /--data FILE.jsonl is required/],
      [['--data', DATA, '--metric', 'perplexity'], /--metric must be one of brier, reconstruction/],
      [['--data', DATA, '--temperature', '-1'], /--temperature/],
      [['--data', DATA, '--block', '30'], /multiple of K = 4/],
      [['--data', DATA, '--temperature', '1.5'], /temperature/],
      [['--data', DATA, '--bogus'], /bogus/],
      [['--data', '/nonexistent.jsonl'], /cannot read the dataset \/nonexistent.jsonl/],
      [['--data', SHORT, '--model', DEFAULT_AR_MODEL_DIR], /has no document of at least 8 tokens/],
    ] as const) {
      const c = capture();
      assert.equal(await evalCommand([...args], c.io), 2, args.join(' '));
      assert.match(c.err.join(''), reason);
    }
  });

  test('--help', () => {
    assert.equal(parseEvalArgs(['--help']), null);
  });
});
