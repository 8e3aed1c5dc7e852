// The graphs the runtime builds for a device-resident KV pool (src/model/device-pool.ts), run on
// the CPU provider: the allocation gives zeros of the pool's shape, and a write puts every new
// key and value where the host pool's scatter puts it, and nothing anywhere else.
import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import ort from '../../src/model/ort.js';
import { DeviceKvPool } from '../../src/model/device-pool.js';
import { type KvGeometry, KvPool } from '../../src/model/kv-pool.js';
import { openBuiltGraph } from '../../src/model/sessions.js';

const cpu = (model: Uint8Array) => openBuiltGraph(model, { device: 'cpu', intraOpThreads: 1, interOpThreads: 1 });

function random(n: number, seed: number, half: boolean): Float32Array | Uint16Array {
  let x = seed;
  const next = () => (x = (x * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
  // float16 values as bit patterns of small normal numbers (sign, exponent 10..17, any mantissa)
  return half ? Uint16Array.from({ length: n }, () => ((next() < 0.5 ? 1 : 0) << 15) | ((10 + Math.floor(next() * 8)) << 10) | Math.floor(next() * 1024))
    : Float32Array.from({ length: n }, () => next() * 2 - 1);
}

for (const dtype of ['float32', 'float16'] as const) {
  describe(`device KV pool graphs (${dtype}, on the CPU provider)`, () => {
    const g: KvGeometry = { layers: 2, kvHeads: 3, headDim: 8, dtype };
    const blocks = 7;
    const bs = 4;

    test('the pool starts as zeros of its shape', async () => {
      const pool = await DeviceKvPool.create(g, blocks, bs, cpu);
      assert.deepEqual(Object.keys(pool.caches).sort(), ['key_cache.0', 'key_cache.1', 'value_cache.0', 'value_cache.1']);
      for (const t of Object.values(pool.caches)) {
        assert.deepEqual(t.dims, [blocks, 3, bs, 8]);
        assert.equal(t.type, dtype);
        assert.ok((t.data as Float32Array | Uint16Array).every((v) => v === 0));
      }
      assert.equal(pool.bytes, blocks * bs * 2 * 2 * 3 * 8 * (dtype === 'float16' ? 2 : 4));
    });

    test('writes land where the host scatter puts them, across blocks, with padded and empty rows', async () => {
      const pool = await DeviceKvPool.create(g, blocks, bs, cpu);
      const host = new KvPool(g, blocks, bs);
      const size = blocks * 3 * bs * 8;
      // both pools start from the same non-zero contents, so a stray write would show
      for (const [i, name] of ['key_cache.0', 'value_cache.0', 'key_cache.1', 'value_cache.1'].entries()) {
        const init = random(size, 100 + i, dtype === 'float16');
        (pool.caches[name]!.data as Float32Array | Uint16Array).set(init);
        const layer = Number(name.slice(-1));
        (name.startsWith('key') ? host.keys : host.values)[layer]!.set(init);
      }
      // three rows of a call with newLen 5: a prefill that crosses two blocks, a padded row
      // continuing a block half full, and a row with nothing valid
      const newLen = 5;
      const pastLen = [0, 6, 3];
      const valid = [5, 2, 0];
      const width = 3;
      const table = BigInt64Array.from([4, 1, 0, 6, 2, 5, 3, 0, 0].map(BigInt));
      const out: Record<string, ort.Tensor> = {};
      for (let layer = 0; layer < 2; layer++) {
        for (const kind of ['key', 'value'] as const) {
          const data = random(3 * 3 * newLen * 8, 7 * layer + (kind === 'key' ? 1 : 2), dtype === 'float16');
          out[`new_${kind}.${layer}`] = new ort.Tensor(dtype, data, [3, 3, newLen, 8]);
          host.scatter(layer, kind, data, newLen, pastLen, valid, table, width);
        }
      }
      const uploaded = await pool.write(out, newLen, pastLen, valid, table, width);
      assert.equal(uploaded, 7 * 3 * 8 * 4, 'src (8 bytes) and dst (24 bytes) per written row of every head');
      for (let layer = 0; layer < 2; layer++) {
        assert.deepEqual(Array.from(pool.caches[`key_cache.${layer}`]!.data as Float32Array), Array.from(host.keys[layer]!), `keys of layer ${layer}`);
        assert.deepEqual(Array.from(pool.caches[`value_cache.${layer}`]!.data as Float32Array), Array.from(host.values[layer]!), `values of layer ${layer}`);
      }
    });

    test('a position beyond the block table is refused before anything is written', async () => {
      const pool = await DeviceKvPool.create(g, blocks, bs, cpu);
      const out: Record<string, ort.Tensor> = {};
      for (let layer = 0; layer < 2; layer++) for (const kind of ['key', 'value']) out[`new_${kind}.${layer}`] = new ort.Tensor(dtype, random(3 * 2 * 8, 1, dtype === 'float16'), [1, 3, 2, 8]);
      await assert.rejects(pool.write(out, 2, [3], [2], BigInt64Array.of(0n), 1), /beyond its block table/);
      for (const t of Object.values(pool.caches)) assert.ok((t.data as Float32Array).every((v) => v === 0));
    });
  });
}
