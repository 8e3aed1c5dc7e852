// What each graph of a bundle must look like: input and output names, element types and the
// dimensions fixed by the manifest (docs/model-bundle.md). Checked once at load time so that a
// mismatched export fails at start-up with a precise message, not mid-request.
import type { BundleManifest, GraphName } from './bundle.js';

export type ElementType = 'float32' | 'float16' | 'int64';
/** A fixed size, or null for a dynamic axis (batch, sequence, samples...). */
export type Dim = number | null;

export interface ValueSpec {
  name: string;
  type: ElementType;
  shape: Dim[];
}

export interface GraphSpec {
  inputs: ValueSpec[];
  outputs: ValueSpec[];
}

/** The paged cache inputs: block_table and every layer's pool; the new keys/values out. */
function kvSpecs(m: BundleManifest, side: 'in' | 'out'): ValueSpec[] {
  const specs: ValueSpec[] = side === 'in' ? [{ name: 'block_table', type: 'int64', shape: [null, null] }] : [];
  for (let i = 0; i < m.num_layers; i++) {
    for (const kind of ['key', 'value']) {
      specs.push(side === 'in'
        ? { name: `${kind}_cache.${i}`, type: m.dtype, shape: [null, m.num_kv_heads, null, m.head_dim] }
        : { name: `new_${kind}.${i}`, type: m.dtype, shape: [null, m.num_kv_heads, null, m.head_dim] });
    }
  }
  return specs;
}

export function graphSpec(m: BundleManifest, graph: GraphName): GraphSpec {
  const f = m.dtype;
  const k = m.patch_size;
  switch (graph) {
    case 'backbone':
      return m.kind === 'calm'
        ? {
            inputs: [
              { name: 'chunk_ids', type: 'int64', shape: [null, null, k] },
              { name: 'past_len', type: 'int64', shape: [null] },
              ...kvSpecs(m, 'in'),
            ],
            outputs: [{ name: 'hidden', type: f, shape: [null, null, m.hidden_size] }, ...kvSpecs(m, 'out')],
          }
        : {
            inputs: [
              { name: 'input_ids', type: 'int64', shape: [null, null] },
              { name: 'past_len', type: 'int64', shape: [null] },
              ...kvSpecs(m, 'in'),
            ],
            outputs: [{ name: 'logits', type: f, shape: [null, null, m.vocab_size] }, ...kvSpecs(m, 'out')],
          };
    case 'head':
      return {
        inputs: [
          { name: 'hidden', type: f, shape: [null, m.hidden_size] },
          { name: 'noise', type: f, shape: [null, null, m.noise_size ?? null] },
        ],
        outputs: [{ name: 'latent', type: f, shape: [null, null, m.latent_size ?? null] }],
      };
    case 'decoder':
      return {
        inputs: [{ name: 'latent', type: f, shape: [null, m.latent_size ?? null] }],
        outputs: [{ name: 'token_ids', type: 'int64', shape: [null, k] }],
      };
    case 'encoder':
      return {
        inputs: [{ name: 'token_ids', type: 'int64', shape: [null, k] }],
        outputs: [
          { name: 'mean', type: f, shape: [null, m.latent_size ?? null] },
          { name: 'log_std', type: f, shape: [null, m.latent_size ?? null] },
        ],
      };
  }
}

/** What a loaded graph reports about one of its values (onnxruntime's metadata, reduced). */
export interface ValueInfo {
  name: string;
  type: string;
  shape: ReadonlyArray<number | string>;
}

/** Every way `actual` departs from `spec`, as readable sentences; empty when it conforms. */
export function signatureProblems(spec: GraphSpec, inputs: ValueInfo[], outputs: ValueInfo[]): string[] {
  const problems: string[] = [];
  const compare = (side: 'input' | 'output', want: ValueSpec[], have: ValueInfo[]) => {
    const byName = new Map(have.map((v) => [v.name, v]));
    for (const w of want) {
      const h = byName.get(w.name);
      if (!h) {
        problems.push(`${side} ${w.name} is missing`);
        continue;
      }
      if (h.type !== w.type) problems.push(`${side} ${w.name} has type ${h.type}, expected ${w.type}`);
      if (h.shape.length !== w.shape.length) {
        problems.push(`${side} ${w.name} has rank ${h.shape.length}, expected ${w.shape.length}`);
        continue;
      }
      w.shape.forEach((dim, i) => {
        const got = h.shape[i];
        if (dim !== null && got !== dim) problems.push(`${side} ${w.name} dimension ${i} is ${String(got)}, expected ${dim}`);
      });
    }
    const known = new Set(want.map((w) => w.name));
    for (const h of have) if (!known.has(h.name)) problems.push(`unexpected ${side} ${h.name}`);
  };
  compare('input', spec.inputs, inputs);
  compare('output', spec.outputs, outputs);
  return problems;
}
