// The model bundle on disk: manifest.json, tokenizer.json and ONNX graphs (docs/model-bundle.md).
// This module reads and validates the manifest; it does not touch onnxruntime.
import { existsSync, readFileSync, statSync } from 'node:fs';
import { join, resolve } from 'node:path';

export const BUNDLE_FORMAT = 'calm-bundle';
/** 2: the backbone reads its past from a paged KV pool through a block table (docs/model-bundle.md). */
export const BUNDLE_VERSION = 2;

export type BundleKind = 'calm' | 'ar';
export type GraphName = 'backbone' | 'head' | 'decoder' | 'encoder';

export interface SpecialTokens {
  pad: number;
  bos: number;
  eos: number;
}

export interface BundleManifest {
  format: typeof BUNDLE_FORMAT;
  version: number;
  name: string;
  kind: BundleKind;
  dtype: 'float32' | 'float16';
  patch_size: number;
  vocab_size: number;
  hidden_size: number;
  num_layers: number;
  num_attention_heads: number;
  num_kv_heads: number;
  head_dim: number;
  max_positions: number;
  context_tokens: number;
  special_tokens: SpecialTokens;
  /** Prepend special_tokens.bos to every prompt (the models were trained on BOS + document). */
  add_bos: boolean;
  latent_size?: number;
  noise_size?: number;
  /**
   * Multiply-accumulates of the weight products (calmtk/macs.py): per backbone position, per head
   * sample and per decoded chunk (CALM); attention's own, per position per context position.
   * Informational (benchmarks); bundles written before it have none.
   */
  macs?: { backbone: number; head?: number; decoder?: number; attention_per_context_position: number };
  files: Partial<Record<GraphName | 'tokenizer', string>>;
}

export interface Bundle {
  dir: string;
  manifest: BundleManifest;
  /** Absolute path of each file named in the manifest. */
  paths: Partial<Record<GraphName | 'tokenizer', string>>;
}

export class BundleError extends Error {
  override name = 'BundleError';
}

export const REQUIRED_FILES: Record<BundleKind, readonly (GraphName | 'tokenizer')[]> = {
  calm: ['tokenizer', 'backbone', 'head', 'decoder', 'encoder'],
  ar: ['tokenizer', 'backbone'],
};

const POSITIVE_INTS = [
  'patch_size', 'vocab_size', 'hidden_size', 'num_layers', 'num_attention_heads', 'num_kv_heads', 'head_dim',
  'max_positions', 'context_tokens',
] as const;

function fail(dir: string, message: string): never {
  throw new BundleError(`model bundle ${dir}: ${message}`);
}

function isPositiveInt(v: unknown): v is number {
  return typeof v === 'number' && Number.isInteger(v) && v > 0;
}

export function loadBundle(dirArg: string): Bundle {
  const dir = resolve(dirArg);
  if (!existsSync(dir) || !statSync(dir).isDirectory()) fail(dir, 'not a directory');
  const manifestPath = join(dir, 'manifest.json');
  if (!existsSync(manifestPath)) fail(dir, 'manifest.json is missing');
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(readFileSync(manifestPath, 'utf8')) as Record<string, unknown>;
  } catch (err) {
    fail(dir, `manifest.json is not valid JSON (${(err as Error).message})`);
  }
  if (raw.format !== BUNDLE_FORMAT) fail(dir, `manifest format is ${JSON.stringify(raw.format)}, expected "${BUNDLE_FORMAT}"`);
  if (raw.version === 1) {
    fail(dir, 'manifest version 1 (a backbone with dense past inputs) is not served any more; upgrade the bundle in place to the ' +
      `paged version ${BUNDLE_VERSION} with \`cd models && /usr/bin/python3 -m calmtk.paged ${dir}\` (docs/model-bundle.md)`);
  }
  if (raw.version !== BUNDLE_VERSION) {
    fail(dir, `manifest version ${JSON.stringify(raw.version)} is not supported (this server reads version ${BUNDLE_VERSION})`);
  }
  if (raw.kind !== 'calm' && raw.kind !== 'ar') fail(dir, `kind must be "calm" or "ar", got ${JSON.stringify(raw.kind)}`);
  if (raw.dtype !== 'float32' && raw.dtype !== 'float16') fail(dir, `dtype must be float32 or float16, got ${JSON.stringify(raw.dtype)}`);
  for (const key of POSITIVE_INTS) {
    if (!isPositiveInt(raw[key])) fail(dir, `${key} must be a positive integer, got ${JSON.stringify(raw[key])}`);
  }
  const m = raw as unknown as BundleManifest;
  if (m.kind === 'ar' && m.patch_size !== 1) fail(dir, `an ar bundle has patch_size 1, got ${m.patch_size}`);
  if (m.kind === 'calm' && (!isPositiveInt(m.latent_size) || !isPositiveInt(m.noise_size))) {
    fail(dir, 'a calm bundle needs positive integer latent_size and noise_size');
  }
  if (m.num_attention_heads % m.num_kv_heads !== 0) fail(dir, 'num_attention_heads must be a multiple of num_kv_heads');
  const special = m.special_tokens as Partial<SpecialTokens> | undefined;
  for (const key of ['pad', 'bos', 'eos'] as const) {
    const id = special?.[key];
    if (typeof id !== 'number' || !Number.isInteger(id) || id < 0 || id >= m.vocab_size) {
      fail(dir, `special_tokens.${key} must be a token id below vocab_size ${m.vocab_size}`);
    }
  }
  if (typeof m.add_bos !== 'boolean') fail(dir, 'add_bos must be true or false');
  if (typeof m.name !== 'string' || m.name.length === 0) fail(dir, 'name must be a non-empty string');
  const paths: Bundle['paths'] = {};
  for (const key of REQUIRED_FILES[m.kind]) {
    const file = m.files?.[key];
    if (typeof file !== 'string') fail(dir, `files.${key} is not set`);
    const path = join(dir, file);
    if (!existsSync(path)) fail(dir, `${key} file ${file} is missing`);
    paths[key] = path;
  }
  return { dir, manifest: m, paths };
}
