// Runs the bundle's graphs on batches. Knows tensors and the KV cache layout; nothing of
// requests, sampling or HTTP. Every call records the time spent inside onnxruntime.
import ort from './ort.js';
import type { BundleManifest } from './bundle.js';
import { DeviceKvPool } from './device-pool.js';
import { floatArray, halfArray } from './float16.js';
import type { KvArray, KvPool } from './kv-pool.js';
import { type GraphSpec, int64Tensor, writeModel } from './onnx-writer.js';
import { type Device, openBuiltGraph, type Sessions } from './sessions.js';

export type Stage = 'backbone' | 'head' | 'decoder';

export class StageClock {
  readonly ms: Record<Stage, number> = { backbone: 0, head: 0, decoder: 0 };
  add(stage: Stage, ms: number): void {
    this.ms[stage] += ms;
  }
  get total(): number {
    return this.ms.backbone + this.ms.head + this.ms.decoder;
  }
  reset(): void {
    this.ms.backbone = this.ms.head = this.ms.decoder = 0;
  }
}

/** One backbone call: `rows` sequences, each with `newLen` input positions (right-padded where a row has fewer). */
export interface BackboneBatch {
  /** newLen inputs per row: chunks of K ids for CALM, tokens for AR */
  ids: BigInt64Array;
  rows: number;
  newLen: number;
  /** positions each row already has in the pool */
  pastLen: number[];
  /** real new positions of each row (the rest of its newLen is padding) */
  valid: number[];
  /** row r's blocks at [r * width, (r + 1) * width), covering pastLen[r] + valid[r] positions; padded with any valid id */
  blockTable: BigInt64Array;
  width: number;
}

/** Positions (backbone) or samples (head, decoder) from which a call goes to the wide session: measured on 2 cores, docs/benchmarks.md "Threads". */
export const WIDE_CALL_WORK = 32;

/** Bytes between host and device (WebGPU); both stay 0 on the CPU. */
export interface Transfer {
  up: number;
  down: number;
}

function asFloat(data: Float32Array | Uint16Array): Float32Array {
  return data instanceof Uint16Array ? floatArray(data) : data;
}

/** x [rows, len, width] and index [n] (row * len + position) -> last [n, width]. */
function lastPositionsGraph(width: number, type: 'float32' | 'float16'): GraphSpec {
  return {
    name: 'last_positions', opset: 17,
    inputs: [{ name: 'x', type, dims: ['rows', 'len', width] }, { name: 'index', type: 'int64', dims: ['n'] }],
    outputs: [{ name: 'last', type, dims: ['n', width] }],
    initializers: [{ name: 'flat', ...int64Tensor([-1, width]) }],
    nodes: [
      { op: 'Reshape', inputs: ['x', 'flat'], outputs: ['x_flat'] },
      { op: 'Gather', inputs: ['x_flat', 'index'], outputs: ['last'], attributes: { axis: 0 } },
    ],
  };
}

function tensorBytes(values: Iterable<ort.Tensor>): number {
  let n = 0;
  for (const t of values) if (t.location === 'cpu') n += (t.data as ArrayBufferView).byteLength;
  return n;
}

export class ModelRunner {
  readonly clock = new StageClock();
  readonly transfer: Transfer = { up: 0, down: 0 };
  private readonly onDevice: boolean;
  /** the graph that gathers each row's last position on the device (backboneLast), opened on first use */
  private lastGather?: Promise<ort.InferenceSession>;
  private readonly half: boolean;
  private readonly backboneOutputs: string[];

  /**
   * `kv` may be left out by a caller that runs only the autoencoder graphs (they keep no cache).
   * `wide`: second sessions with more threads, used for calls of at least WIDE_CALL_WORK
   * positions or samples (see threadPlan in sessions.ts). On WebGPU (`device`), the head's
   * latents stay on the device (sessions.ts, deviceOutputs), and so do the backbone's new keys
   * and values when the pool is a DeviceKvPool.
   */
  constructor(readonly manifest: BundleManifest, private readonly sessions: Sessions, readonly kv?: KvPool | DeviceKvPool,
    private readonly wide: Sessions = {}, device: Device = 'cpu') {
    this.half = manifest.dtype === 'float16';
    this.onDevice = device === 'webgpu';
    const first = manifest.kind === 'calm' ? 'hidden' : 'logits';
    this.backboneOutputs = [first];
    for (let i = 0; i < manifest.num_layers; i++) this.backboneOutputs.push(`new_key.${i}`, `new_value.${i}`);
  }

  /**
   * One backbone call. The graph reads each row's past from the pool through its block table;
   * the new positions' keys and values are scattered into the pool here. Returns hidden states
   * [rows, newLen, d] (CALM) or logits [rows, newLen, vocab] (AR), as float32. Host pools only:
   * with a device pool the engine takes backboneLast.
   */
  async backbone(b: BackboneBatch): Promise<Float32Array> {
    if (this.kv instanceof DeviceKvPool) throw new Error('ModelRunner.backbone: with a device pool, every position stays on the device; use backboneLast');
    const main = await this.call(b);
    return asFloat(main.data as Float32Array | Uint16Array);
  }

  /**
   * A backbone call that returns only each row's last valid position, [rows, d] or [rows, vocab]
   * (what sampling needs). With a device pool the rest never leaves the device: a built graph
   * gathers these rows there.
   */
  async backboneLast(b: BackboneBatch): Promise<Float32Array> {
    if (b.valid.some((v) => v < 1)) throw new RangeError('backboneLast: every row needs a valid position');
    const main = await this.call(b);
    const width = main.dims[2]!;
    if (main.location === 'cpu') {
      const all = asFloat(main.data as Float32Array | Uint16Array);
      // a decode call (one position per row) is its own last positions: no copy on the step's hot path
      if (b.newLen === 1) return all;
      const last = new Float32Array(b.rows * width);
      for (let r = 0; r < b.rows; r++) last.set(all.subarray((r * b.newLen + b.valid[r]! - 1) * width, (r * b.newLen + b.valid[r]!) * width), r * width);
      return last;
    }
    try {
      this.lastGather ??= openBuiltGraph(writeModel(lastPositionsGraph(width, main.type as 'float32' | 'float16')), {
        device: 'webgpu', intraOpThreads: 1, interOpThreads: 1,
      });
      const feeds = {
        x: main,
        index: new ort.Tensor('int64', BigInt64Array.from(b.valid, (v, r) => BigInt(r * b.newLen + v - 1)), [b.rows]),
      };
      const t0 = performance.now();
      const out = await (await this.lastGather).run(feeds);
      this.clock.add('backbone', performance.now() - t0);
      this.count(feeds, out);
      return asFloat(out.last!.data as Float32Array | Uint16Array);
    } finally {
      main.dispose();
    }
  }

  /** Runs the backbone and writes the new keys and values; returns its main output (on the device with a device pool). */
  private async call(b: BackboneBatch): Promise<ort.Tensor> {
    const m = this.manifest;
    const kv = this.kv;
    if (!kv) throw new Error('ModelRunner.backbone needs a KV pool');
    const type = this.half ? 'float16' : 'float32';
    const feeds: Record<string, ort.Tensor> = {
      past_len: new ort.Tensor('int64', BigInt64Array.from(b.pastLen, (n) => BigInt(n)), [b.rows]),
      block_table: new ort.Tensor('int64', b.blockTable, [b.rows, b.width]),
    };
    if (m.kind === 'calm') feeds.chunk_ids = new ort.Tensor('int64', b.ids, [b.rows, b.newLen, m.patch_size]);
    else feeds.input_ids = new ort.Tensor('int64', b.ids, [b.rows, b.newLen]);
    if (kv instanceof DeviceKvPool) Object.assign(feeds, kv.caches);
    else {
      for (let i = 0; i < m.num_layers; i++) {
        feeds[`key_cache.${i}`] = new ort.Tensor(type, kv.keys[i]!, kv.dims);
        feeds[`value_cache.${i}`] = new ort.Tensor(type, kv.values[i]!, kv.dims);
      }
    }
    const t0 = performance.now();
    const out = await this.pick('backbone', b.rows * b.newLen).run(feeds, this.backboneOutputs);
    this.clock.add('backbone', performance.now() - t0);
    this.count(feeds, out);
    const main = out[this.backboneOutputs[0]!]!;
    if (kv instanceof DeviceKvPool) {
      try {
        this.transfer.up += await kv.write(out, b.newLen, b.pastLen, b.valid, b.blockTable, b.width);
      } catch (err) {
        if (main.location === 'gpu-buffer') main.dispose();
        throw err;
      } finally {
        for (const t of Object.values(out)) if (t !== main && t.location === 'gpu-buffer') t.dispose();
      }
    } else {
      for (let i = 0; i < m.num_layers; i++) {
        kv.scatter(i, 'key', out[`new_key.${i}`]!.data as KvArray, b.newLen, b.pastLen, b.valid, b.blockTable, b.width);
        kv.scatter(i, 'value', out[`new_value.${i}`]!.data as KvArray, b.newLen, b.pastLen, b.valid, b.blockTable, b.width);
      }
    }
    return main;
  }

  /** Releases every session and, on a device, the KV pool; the runner is unusable after. */
  async release(): Promise<void> {
    if (this.lastGather) await (await this.lastGather).release();
    for (const s of [...Object.values(this.sessions), ...Object.values(this.wide)]) await s.release();
    if (this.kv instanceof DeviceKvPool) await this.kv.release();
  }

  /** Host <-> device bytes of one WebGPU call (inputs and outputs that are host tensors). */
  private count(feeds: Record<string, ort.Tensor>, out: Record<string, ort.Tensor>): void {
    if (!this.onDevice) return;
    this.transfer.up += tensorBytes(Object.values(feeds));
    this.transfer.down += tensorBytes(Object.values(out));
  }

  /**
   * Energy head then decoder: `samples` chunks for each of `rows` hidden states (noise is
   * [rows, samples, noise_size]); returns rows * samples chunks of K token ids. The latents
   * between the two graphs stay on the device when there is one.
   */
  async draw(hidden: Float32Array, rows: number, samples: number, noise: Float32Array): Promise<BigInt64Array> {
    const m = this.manifest;
    const type = this.half ? 'float16' : 'float32';
    const feeds = {
      hidden: new ort.Tensor(type, this.half ? halfArray(hidden) : hidden, [rows, m.hidden_size]),
      noise: new ort.Tensor(type, this.half ? halfArray(noise) : noise, [rows, samples, m.noise_size!]),
    };
    const t0 = performance.now();
    const out = await this.pick('head', rows * samples).run(feeds);
    this.clock.add('head', performance.now() - t0);
    this.count(feeds, out);
    const latent = out.latent!;
    try {
      const dims = [rows * samples, m.latent_size!];
      // A device tensor that owns its buffer cannot be reshaped; a view of the buffer can.
      const flat = latent.location === 'gpu-buffer' ? ort.Tensor.fromGpuBuffer(latent.gpuBuffer, { dataType: latent.type as 'float32' | 'float16', dims }) : latent.reshape(dims);
      return await this.decode(flat, rows * samples);
    } finally {
      if (latent.location === 'gpu-buffer') latent.dispose();
    }
  }

  private pick(graph: 'backbone' | 'head' | 'decoder', work: number): ort.InferenceSession {
    return (work >= WIDE_CALL_WORK ? this.wide[graph] : undefined) ?? this.sessions[graph]!;
  }

  /** Encoder: n chunks of K token ids -> the posterior means [n, latent_size] (what the decoder reconstructs from). */
  async encoder(ids: BigInt64Array, n: number): Promise<Float32Array | Uint16Array> {
    const m = this.manifest;
    const out = await this.sessions.encoder!.run({ token_ids: new ort.Tensor('int64', ids, [n, m.patch_size]) }, ['mean']);
    return out.mean!.data as Float32Array | Uint16Array;
  }

  /** Decoder: n latent vectors -> n chunks of K token ids (argmax inside the graph). */
  decoder(latent: Float32Array | Uint16Array, n: number): Promise<BigInt64Array> {
    const m = this.manifest;
    return this.decode(new ort.Tensor(this.half ? 'float16' : 'float32', latent, [n, m.latent_size!]), n);
  }

  private async decode(latent: ort.Tensor, n: number): Promise<BigInt64Array> {
    const t0 = performance.now();
    const feeds = { latent };
    const out = await this.pick('decoder', n).run(feeds);
    this.clock.add('decoder', performance.now() - t0);
    this.count(feeds, out);
    return out.token_ids!.data as BigInt64Array;
  }
}
