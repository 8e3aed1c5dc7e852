// `calm eval`: likelihood-free evaluation of a bundle from the command line (docs/quality.md).
import { parseArgs } from 'node:util';
import { PROMPT_POLICIES, type PromptPolicy } from '../engine/prompt.js';
import { DEFAULT_MODEL_DIR } from '../model/defaults.js';
import { DEVICES } from '../model/sessions.js';
import { BRIER_ORDERS } from '../eval/brier.js';
import { POSITION_MODES, type PositionMode } from '../eval/corpus.js';
import { type CommandIO, PROCESS_IO, UsageError } from './io.js';
import { EVAL_DEFAULTS, EvalError, type EvalOptions, type EvalReport, type BrierFigures, runEval } from '../eval/run.js';

export const EVAL_HELP = `usage: calm eval --data FILE.jsonl [options]

BrierLM (Brier-1 .. Brier-4 and their geometric mean x 100) of a CALM or token bundle, or the
autoencoder's reconstruction accuracy, on a JSONL corpus (one {"text": ...} per line).

  --data FILE.jsonl        the corpus (required)
  --model DIR              model bundle (default ${DEFAULT_MODEL_DIR})
  --metric brier|reconstruction
                           brier: BrierLM from two samples per position under teacher forcing
                           (token models also get the estimate from their probabilities);
                           reconstruction: encoder mean -> decoder argmax, token and chunk-exact
                           accuracy (CALM bundles only) (default ${EVAL_DEFAULTS.metric})
  --max-docs N             only the first N documents (default: all)
  --seed S                 seed of every sample; same seed, same figures (default ${EVAL_DEFAULTS.seed})
  --block N                window length in tokens, a multiple of K (default 256, the training length)
  --positions aligned|all  aligned: every chunk boundary, as in the paper; all: every token
                           position, which CALM meets through the prompt policy (default aligned)
  --prompt-policy pad|left how CALM aligns a context that is not whole chunks (default ${EVAL_DEFAULTS.promptPolicy}, as the server)
  --temperature T          sampling temperature: 0..1 for CALM, 0..2 for a token model (default 1)
  --sampler batch|exact    CALM sampler for 0 < T < 1 (default batch)
  --pool-size N            batch sampler pool size (default ${EVAL_DEFAULTS.poolSize})
  --batch N                windows per backbone call (CALM; no effect on the figures) (default ${EVAL_DEFAULTS.batchWindows})
  --device cpu|webgpu|cuda (default cpu)
  --threads N              onnxruntime intra-op threads (default: one per core)
  --json                   print one JSON object with every figure
  --no-progress            no progress bar on stderr
  -h, --help               this text

example:
  calm eval --data ../shared/data/wikitext103-test-documents.jsonl --model models/bundles/ar-baseline --json`;

function integer(name: string, v: string | undefined, fallback: number, min: number): number {
  if (v === undefined) return fallback;
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer of at least ${min}, got ${JSON.stringify(v)}`);
  return n;
}

function oneOf<T extends string>(name: string, v: string | undefined, allowed: readonly T[], fallback: T): T {
  if (v === undefined) return fallback;
  if (!allowed.includes(v as T)) throw new UsageError(`--${name} must be one of ${allowed.join(', ')}, got ${JSON.stringify(v)}`);
  return v as T;
}

/** The command line as evaluation options, plus the output flags; null for --help. */
export function parseEvalArgs(argv: string[]): { options: EvalOptions; json: boolean; progress: boolean } | null {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      options: {
        data: { type: 'string' }, model: { type: 'string' }, metric: { type: 'string' }, 'max-docs': { type: 'string' }, seed: { type: 'string' },
        block: { type: 'string' }, positions: { type: 'string' }, 'prompt-policy': { type: 'string' }, temperature: { type: 'string' },
        sampler: { type: 'string' }, 'pool-size': { type: 'string' }, batch: { type: 'string' }, device: { type: 'string' }, threads: { type: 'string' },
        json: { type: 'boolean', default: false }, 'no-progress': { type: 'boolean', default: false }, help: { type: 'boolean', short: 'h' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) return null;
  if (values.data === undefined) throw new UsageError('--data FILE.jsonl is required (see calm eval --help)');
  let temperature: number = EVAL_DEFAULTS.temperature;
  if (values.temperature !== undefined) {
    temperature = Number(values.temperature);
    if (!Number.isFinite(temperature) || temperature < 0) throw new UsageError(`--temperature must be a number of at least 0, got ${JSON.stringify(values.temperature)}`);
  }
  const options: EvalOptions = {
    ...EVAL_DEFAULTS,
    data: values.data,
    modelDir: values.model ?? DEFAULT_MODEL_DIR,
    metric: oneOf('metric', values.metric, ['brier', 'reconstruction'] as const, EVAL_DEFAULTS.metric),
    maxDocs: integer('max-docs', values['max-docs'], EVAL_DEFAULTS.maxDocs, 1),
    seed: integer('seed', values.seed, EVAL_DEFAULTS.seed, 0),
    block: integer('block', values.block, EVAL_DEFAULTS.block, 1),
    positions: oneOf<PositionMode>('positions', values.positions, POSITION_MODES, EVAL_DEFAULTS.positions),
    promptPolicy: oneOf<PromptPolicy>('prompt-policy', values['prompt-policy'], PROMPT_POLICIES, EVAL_DEFAULTS.promptPolicy),
    temperature,
    sampler: oneOf('sampler', values.sampler, ['batch', 'exact'] as const, EVAL_DEFAULTS.sampler),
    poolSize: integer('pool-size', values['pool-size'], EVAL_DEFAULTS.poolSize, 1),
    batchWindows: integer('batch', values.batch, EVAL_DEFAULTS.batchWindows, 1),
    device: oneOf('device', values.device, DEVICES, EVAL_DEFAULTS.device),
    threads: integer('threads', values.threads, EVAL_DEFAULTS.threads, 0),
  };
  return { options, json: values.json, progress: !values['no-progress'] };
}

function briefRows(label: string, f: BrierFigures | undefined): string[] {
  if (!f) return [];
  const rows = [`${label}`];
  for (let n = 1; n <= BRIER_ORDERS; n++) rows.push(`  Brier-${n}   ${f[`brier${n}`]!.toFixed(4)} ± ${f[`brier${n}_se`]!.toFixed(4)}`);
  rows.push(`  BrierLM   ${f.brierlm!.toFixed(2)}`);
  return rows;
}

/** The report as a short human-readable text. */
export function formatReport(r: EvalReport): string {
  const settings = Object.entries(r.settings).map(([k, v]) => `${k} ${v}`).join(', ');
  const lines = [`${r.model} (${r.kind}) on ${r.data}: ${r.documents} documents${r.windows !== undefined ? `, ${r.windows} windows` : ''}${settings ? ` (${settings})` : ''}`];
  if (r.reconstruction) {
    const x = r.reconstruction;
    lines.push(`  token accuracy        ${(100 * x.token_accuracy).toFixed(2)} % ± ${(100 * x.token_accuracy_se).toFixed(2)}  (${x.tokens} tokens)`);
    lines.push(`  chunk-exact accuracy  ${(100 * x.chunk_accuracy).toFixed(2)} % ± ${(100 * x.chunk_accuracy_se).toFixed(2)}  (${x.chunks} chunks)`);
  }
  lines.push(...briefRows(`two samples per position (${r.brier?.positions ?? 0} positions)`, r.brier));
  for (const f of r.brier_by_offset ?? []) {
    const terms = Array.from({ length: BRIER_ORDERS }, (_, n) => f[`brier${n + 1}`]!.toFixed(4)).join(' / ');
    lines.push(`  positions with p mod ${BRIER_ORDERS} = ${f.offset}: Brier-1..${BRIER_ORDERS} ${terms}, BrierLM ${f.brierlm!.toFixed(2)} (${f.positions} positions)`);
  }
  lines.push(...briefRows('from the model\'s probabilities (Brier-1 exact; Brier-2..4 with an unbiased collision estimate)', r.brier_exact));
  lines.push(`${r.elapsed_s.toFixed(1)} s`);
  return lines.join('\n');
}

/** `calm eval`: 0 on success, 1 when the evaluation failed, 2 for bad options. */
export async function evalCommand(argv: string[], io: CommandIO = PROCESS_IO): Promise<number> {
  let parsed;
  try {
    parsed = parseEvalArgs(argv);
  } catch (err) {
    if (!(err instanceof UsageError)) throw err;
    io.stderr(`calm eval: ${err.message}\n`);
    return 2;
  }
  if (parsed === null) {
    io.stdout(`${EVAL_HELP}\n`);
    return 0;
  }
  try {
    const report = await runEval(parsed.options, parsed.progress ? io : null);
    io.stdout(parsed.json ? `${JSON.stringify(report, null, 2)}\n` : `${formatReport(report)}\n`);
    return 0;
  } catch (err) {
    if (!(err instanceof EvalError)) throw err;
    io.stderr(`calm eval: ${err.message}\n`);
    return 2;
  }
}
