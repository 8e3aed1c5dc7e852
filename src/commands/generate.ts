// `calm generate`: one completion from the command line, streamed to stdout as it is decoded.
import { parseArgs } from 'node:util';
import { EngineClient } from '../engine/client.js';
import { ENGINE_DEFAULTS } from '../engine/config.js';
import { PROMPT_POLICIES, type PromptPolicy } from '../engine/prompt.js';
import { DEFAULT_MODEL_DIR } from '../model/defaults.js';
import { DEVICES, isDevice } from '../model/sessions.js';

const HELP = `usage: calm generate --prompt TEXT [options]

  --prompt TEXT          the prompt (required)
  --max-tokens N         tokens to generate (default 64)
  --temperature T        0 (greedy) to 1 (default 1)
  --seed S               seed of the request's random stream (default: random, printed)
  --model DIR            model bundle (default ${DEFAULT_MODEL_DIR})
  --pool-size N          CALM batch sampler pool size (default 200)
  --sampler batch|exact  CALM sampler for 0 < T < 1 (default batch)
  --prompt-policy pad|left  how a prompt that is not a multiple of K is aligned (default left)
  --stop TEXT            stop string (repeatable)
  --device cpu|webgpu|cuda (default cpu)
  --threads N            onnxruntime intra-op threads (default: one per core)
  --verbose              print timings and usage to stderr`;

function int(name: string, v: string | undefined, fallback: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n)) throw new Error(`--${name} must be an integer, got ${v}`);
  return n;
}

export async function generateCommand(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      prompt: { type: 'string' }, 'max-tokens': { type: 'string' }, temperature: { type: 'string' }, seed: { type: 'string' },
      model: { type: 'string' }, 'pool-size': { type: 'string' }, sampler: { type: 'string' }, 'prompt-policy': { type: 'string' },
      stop: { type: 'string', multiple: true }, device: { type: 'string' }, threads: { type: 'string' },
      verbose: { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
    },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (values.prompt === undefined) throw new Error('--prompt is required (see calm generate --help)');
  const device = values.device ?? 'cpu';
  if (!isDevice(device)) throw new Error(`--device must be one of ${DEVICES.join(', ')}, got ${device}`);
  const sampler = values.sampler ?? 'batch';
  if (sampler !== 'batch' && sampler !== 'exact') throw new Error(`--sampler must be batch or exact, got ${sampler}`);
  const policy = (values['prompt-policy'] ?? ENGINE_DEFAULTS.promptPolicy) as PromptPolicy;
  if (!PROMPT_POLICIES.includes(policy)) throw new Error(`--prompt-policy must be one of ${PROMPT_POLICIES.join(', ')}`);
  const temperature = values.temperature === undefined ? 1 : Number(values.temperature);
  const client = await EngineClient.start({
    ...ENGINE_DEFAULTS,
    modelDir: values.model ?? DEFAULT_MODEL_DIR,
    device,
    intraOpThreads: int('threads', values.threads, 0),
    maxRunning: 1,
  });
  try {
    const started = performance.now();
    const { events } = await client.generate(
      {
        id: 'cli', prompt: values.prompt, maxTokens: int('max-tokens', values['max-tokens'], 64), temperature,
        sampler, promptPolicy: policy, stop: values.stop ?? [],
        ...(values.seed !== undefined ? { seed: int('seed', values.seed, 0) } : {}),
        ...(values['pool-size'] !== undefined ? { poolSize: int('pool-size', values['pool-size'], 200) } : {}),
      },
      (e) => {
        if (e.type === 'chunk') process.stdout.write(e.text);
      },
    );
    process.stdout.write('\n');
    const last = events.at(-1)!;
    if (last.type === 'error') {
      console.error(`calm generate: ${last.message}`);
      return 1;
    }
    if (values.verbose && last.type === 'done') {
      const secs = (performance.now() - started) / 1000;
      console.error(`[${client.info.model} on ${client.info.device}] finish=${last.finishReason} seed=${last.seed} ` +
        `prompt_tokens=${last.usage.promptTokens} completion_tokens=${last.usage.completionTokens} ` +
        `${(last.usage.completionTokens / secs).toFixed(1)} tokens/s`);
    }
    return 0;
  } finally {
    await client.close();
  }
}
