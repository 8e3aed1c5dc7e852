import assert from 'node:assert/strict';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { BundleError, loadBundle } from '../../src/model/bundle.js';
import { DEFAULT_AR_MODEL_DIR, DEFAULT_MODEL_DIR } from '../../src/model/defaults.js';
import { openSessions } from '../../src/model/sessions.js';

const scratch = mkdtempSync(join(tmpdir(), 'calm-bundle-test-'));
after(() => rmSync(scratch, { recursive: true, force: true }));

/** A copy of the default bundle's small files (manifest, tokenizer) with the manifest edited. */
function brokenCopy(name: string, edit: (m: Record<string, unknown>) => void, dropFile?: string): string {
  const dir = join(scratch, name);
  cpSync(DEFAULT_MODEL_DIR, dir, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8')) as Record<string, unknown>;
  edit(manifest);
  writeFileSync(join(dir, 'manifest.json'), JSON.stringify(manifest));
  if (dropFile) rmSync(join(dir, dropFile));
  return dir;
}

describe('default bundles', () => {
  for (const dir of [DEFAULT_MODEL_DIR, DEFAULT_AR_MODEL_DIR]) {
    test(`${dir.split('/').pop()} loads and every graph matches its manifest`, async () => {
      const bundle = loadBundle(dir);
      const sessions = await openSessions(bundle, { device: 'cpu', intraOpThreads: 1, interOpThreads: 1 }, true);
      const expected = bundle.manifest.kind === 'calm' ? ['backbone', 'head', 'decoder', 'encoder'] : ['backbone'];
      assert.deepEqual(Object.keys(sessions).sort(), expected.sort());
      await Promise.all(Object.values(sessions).map((s) => s.release()));
    });
  }
});

describe('bundle validation names the problem', () => {
  const cases: [string, (m: Record<string, unknown>) => void, RegExp, string?][] = [
    ['wrong version', (m) => (m.version = 99), /version 99 is not supported/],
    ['wrong format', (m) => (m.format = 'gguf'), /format is "gguf"/],
    ['unknown kind', (m) => (m.kind = 'diffusion'), /kind must be "calm" or "ar"/],
    ['bad size', (m) => (m.hidden_size = -3), /hidden_size must be a positive integer/],
    ['special token out of range', (m) => ((m.special_tokens as Record<string, number>).eos = 1e9), /special_tokens.eos/],
    ['missing graph file', () => undefined, /head file head.onnx is missing/, 'head.onnx'],
  ];
  for (const [name, edit, message, drop] of cases) {
    test(name, () => {
      const dir = brokenCopy(name.replace(/ /g, '-'), edit, drop);
      assert.throws(() => loadBundle(dir), (err: unknown) => err instanceof BundleError && message.test(err.message));
    });
  }

  test('missing directory and missing manifest', () => {
    assert.throws(() => loadBundle(join(scratch, 'nope')), /not a directory/);
    const dir = brokenCopy('no-manifest', () => undefined, 'manifest.json');
    assert.throws(() => loadBundle(dir), /manifest.json is missing/);
  });

  test('a graph whose shapes disagree with the manifest is refused at load', async () => {
    const dir = brokenCopy('shape-mismatch', (m) => (m.latent_size = (m.latent_size as number) + 1));
    await assert.rejects(
      openSessions(loadBundle(dir), { device: 'cpu', intraOpThreads: 1, interOpThreads: 1 }),
      /head graph does not match the manifest: .*latent dimension 2 is \d+, expected \d+/,
    );
  });
});
