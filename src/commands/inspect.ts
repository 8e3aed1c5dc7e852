// `calm inspect [DIR]`: print a bundle's manifest, file sizes and graph signatures; exit 1 if
// anything fails to load or does not match the manifest.
import { statSync } from 'node:fs';
import { parseArgs } from 'node:util';
import { loadBundle } from '../model/bundle.js';
import { DEVICES, isDevice, openSessions } from '../model/sessions.js';
import { DEFAULT_MODEL_DIR } from '../model/defaults.js';
import { TextTokenizer } from '../model/tokenizer.js';

const HELP = `usage: calm inspect [DIR] [--device cpu|webgpu|cuda] [--json]

Prints the manifest of the model bundle in DIR (default ${DEFAULT_MODEL_DIR}), the size of each file,
and the inputs and outputs of every graph after loading it in onnxruntime.`;

function mib(path: string): string {
  return `${(statSync(path).size / 2 ** 20).toFixed(1)} MiB`;
}

export async function inspectCommand(argv: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: argv,
    allowPositionals: true,
    options: { device: { type: 'string', default: 'cpu' }, json: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' } },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (!isDevice(values.device)) throw new Error(`--device must be one of ${DEVICES.join(', ')}, got ${values.device}`);
  const bundle = loadBundle(positionals[0] ?? DEFAULT_MODEL_DIR);
  const started = performance.now();
  const sessions = await openSessions(bundle, { device: values.device, intraOpThreads: 0, interOpThreads: 0 }, true);
  // the tokenizer is part of the bundle too: a corrupt one fails here, not at the first request
  const vocab = new TextTokenizer(bundle.paths.tokenizer!, bundle.manifest.special_tokens).vocabSize;
  const loadMs = performance.now() - started;
  const graphs = Object.fromEntries(
    Object.entries(sessions).map(([name, s]) => [
      name,
      {
        file: bundle.paths[name as keyof typeof bundle.paths],
        inputs: s.inputMetadata.map((v) => (v.isTensor ? `${v.name}: ${v.type}[${v.shape.join(', ')}]` : v.name)),
        outputs: s.outputMetadata.map((v) => (v.isTensor ? `${v.name}: ${v.type}[${v.shape.join(', ')}]` : v.name)),
      },
    ]),
  );
  if (values.json) {
    console.log(JSON.stringify({ dir: bundle.dir, manifest: bundle.manifest, graphs, tokenizer_entries: vocab, load_ms: Math.round(loadMs) }, null, 2));
  } else {
    console.log(`bundle ${bundle.dir}`);
    console.log(JSON.stringify(bundle.manifest, null, 2));
    for (const [name, g] of Object.entries(graphs)) {
      console.log(`\n${name}: ${g.file} (${g.file ? mib(g.file) : '?'})`);
      for (const i of g.inputs) console.log(`  in  ${i}`);
      for (const o of g.outputs) console.log(`  out ${o}`);
    }
    console.log(`\nall ${Object.keys(graphs).length} graphs loaded on ${values.device} in ${Math.round(loadMs)} ms and match the manifest; the tokenizer has ${vocab} entries`);
  }
  await Promise.all(Object.values(sessions).map((s) => s.release()));
  return 0;
}
