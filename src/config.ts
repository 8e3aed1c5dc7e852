// Every server setting in one table: its flag (`calm serve --max-running 32`), its environment
// variable (`CALM_MAX_RUNNING=32`), its type, default and help. The flag wins over the
// environment, the environment over the default. `calm serve --help` and README.md list them.
import { readFileSync } from 'node:fs';
import { ENGINE_DEFAULTS, type EngineConfig } from './engine/config.js';
import { PROMPT_POLICIES, type PromptPolicy } from './engine/prompt.js';
import { DEFAULT_MODEL_DIR } from './model/defaults.js';

/** The server's settings: the engine's for every model (each model gets its own engine, KV budget included), less the one bundle. */
export interface ServerConfig extends Omit<EngineConfig, 'modelDir'> {
  /** bundle directories, one engine thread each; the first is the default when it is the only one */
  modelDirs: string[];
  host: string;
  port: number;
  /** accepted API keys; empty: no authentication */
  apiKeys: string[];
  /** allowed CORS origins ('*' for any); empty: CORS off */
  corsOrigins: string[];
  requestTimeoutMs: number;
  /** a client must send its whole request, headers and body, within this (408 otherwise) */
  readTimeoutMs: number;
  bodyLimitBytes: number;
  drainGraceMs: number;
  /** /health fails when the engine loop has shown no sign of life for this long */
  healthStallMs: number;
  logLevel: string;
  logPrompts: boolean;
  /** model ids reported by the API, one per bundle in modelDirs' order (empty: each bundle's name) */
  modelNames: string[];
  /** choices per prompt (`n`) at most */
  maxN: number;
}

type Kind = 'string' | 'int' | 'bool' | 'list' | 'bytes';

interface Option {
  key: keyof ServerConfig;
  flag: string;
  kind: Kind;
  help: string;
  /** extra environment names read before CALM_<FLAG> (PORT, HOST) */
  alias?: string;
  choices?: readonly string[];
}

export const OPTIONS: Option[] = [
  { key: 'modelDirs', flag: 'model', kind: 'list', help: 'model bundle directory; repeat the flag or give a comma list to serve several models, each with its own engine thread and KV budget' },
  { key: 'modelNames', flag: 'model-name', kind: 'list', help: "model id in the API (default: the bundle's name); with several models, one id per --model, in the same order (a comma list)" },
  { key: 'host', flag: 'host', kind: 'string', alias: 'HOST', help: 'address to listen on' },
  { key: 'port', flag: 'port', kind: 'int', alias: 'PORT', help: 'port to listen on' },
  { key: 'device', flag: 'device', kind: 'string', choices: ['cpu', 'webgpu', 'cuda'], help: 'onnxruntime execution provider (webgpu: a GPU through Vulkan, docs/gpu.md)' },
  { key: 'intraOpThreads', flag: 'threads', kind: 'int', help: 'onnxruntime threads per operator (0: one thread for small calls, every core for large calls and large graphs; docs/benchmarks.md "Threads")' },
  { key: 'interOpThreads', flag: 'inter-op-threads', kind: 'int', help: 'onnxruntime threads across operators' },
  { key: 'maxRunning', flag: 'max-running', kind: 'int', help: 'sequences decoded together at most (continuous batching)' },
  { key: 'maxWaiting', flag: 'max-waiting', kind: 'int', help: 'requests queued at most; beyond it 429 with Retry-After' },
  { key: 'kvCacheBytes', flag: 'kv-cache-bytes', kind: 'bytes', help: 'KV pool memory budget of each model (bytes; suffixes k, m, g)' },
  { key: 'blockSize', flag: 'block-size', kind: 'int', help: 'backbone positions per KV block (chunks for CALM, tokens for AR)' },
  { key: 'maxContextTokens', flag: 'max-context-tokens', kind: 'int', help: "context limit in tokens (0: the model's)" },
  { key: 'maxBatchedPositions', flag: 'max-batched-positions', kind: 'int', help: 'backbone positions per step at most, decode first (at least --max-running)' },
  { key: 'maxPrefillPositions', flag: 'max-prefill-positions', kind: 'int', help: 'prompt positions prefilled per step while others decode (chunked prefill)' },
  { key: 'promptPolicy', flag: 'prompt-policy', kind: 'string', choices: PROMPT_POLICIES, help: 'alignment of prompts that are not a multiple of K' },
  { key: 'defaultPoolSize', flag: 'pool-size', kind: 'int', help: 'default N of the batch sampler' },
  { key: 'maxPoolSize', flag: 'max-pool-size', kind: 'int', help: 'largest pool_size a request may ask for' },
  { key: 'maxStepDraws', flag: 'max-step-draws', kind: 'int', help: 'energy-head samples per step at most for T < 1 samplers (fewer while other sequences share the step); a larger pool continues over later steps' },
  { key: 'exactMaxDraws', flag: 'exact-max-draws', kind: 'int', help: 'draw budget per chunk of the exact sampler' },
  { key: 'maxN', flag: 'max-n', kind: 'int', help: 'choices per prompt (n) a request may ask for' },
  { key: 'apiKeys', flag: 'api-keys', kind: 'list', help: 'comma-separated API keys (none: no authentication)' },
  { key: 'apiKeys', flag: 'api-keys-file', kind: 'string', help: 'file with one API key per line (added to --api-keys)' },
  { key: 'corsOrigins', flag: 'cors-origins', kind: 'list', help: "comma-separated allowed origins, '*' for any (none: CORS off)" },
  { key: 'requestTimeoutMs', flag: 'request-timeout-ms', kind: 'int', help: 'a generation running longer is cancelled (0: no timeout)' },
  { key: 'readTimeoutMs', flag: 'read-timeout-ms', kind: 'int', help: 'a client must send its whole request (headers and body) within this; 408 otherwise (a slow or stalled upload)' },
  { key: 'bodyLimitBytes', flag: 'body-limit', kind: 'bytes', help: 'largest request body' },
  { key: 'drainGraceMs', flag: 'drain-grace-ms', kind: 'int', help: 'on SIGTERM, how long running requests may finish' },
  { key: 'healthStallMs', flag: 'health-stall-ms', kind: 'int', help: '/health fails when the engine loop is stuck this long' },
  { key: 'logLevel', flag: 'log-level', kind: 'string', choices: ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'], help: 'log level' },
  { key: 'logPrompts', flag: 'log-prompts', kind: 'bool', help: 'log prompt and completion text (debugging only)' },
];

export const SERVER_DEFAULTS: ServerConfig = {
  ...ENGINE_DEFAULTS,
  modelDirs: [DEFAULT_MODEL_DIR],
  modelNames: [],
  host: '0.0.0.0',
  port: 8000,
  apiKeys: [],
  corsOrigins: [],
  requestTimeoutMs: 600_000,
  readTimeoutMs: 30_000,
  bodyLimitBytes: 1 << 20,
  drainGraceMs: 30_000,
  healthStallMs: 30_000,
  logLevel: 'info',
  logPrompts: false,
  maxN: 16,
};

export class ConfigError extends Error {}

export function envName(flag: string): string {
  return `CALM_${flag.toUpperCase().replace(/-/g, '_')}`;
}

function parseBytes(v: string, name: string): number {
  const m = /^(\d+(?:\.\d+)?)\s*([kmg]i?b?)?$/i.exec(v.trim());
  if (!m) throw new ConfigError(`${name} must be a size such as 1073741824, 512m or 1g, got ${JSON.stringify(v)}`);
  const unit = (m[2] ?? '').toLowerCase()[0];
  const mult = unit === 'k' ? 1024 : unit === 'm' ? 1024 ** 2 : unit === 'g' ? 1024 ** 3 : 1;
  return Math.floor(Number(m[1]) * mult);
}

function convert(o: Option, v: string, source: string): unknown {
  switch (o.kind) {
    case 'int': {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0) throw new ConfigError(`${source} must be a non-negative integer, got ${JSON.stringify(v)}`);
      return n;
    }
    case 'bool':
      if (!['1', '0', 'true', 'false', 'yes', 'no', ''].includes(v.toLowerCase())) throw new ConfigError(`${source} must be true or false, got ${JSON.stringify(v)}`);
      return ['1', 'true', 'yes', ''].includes(v.toLowerCase());
    case 'list':
      return v.split(',').map((s) => s.trim()).filter(Boolean);
    case 'bytes':
      return parseBytes(v, source);
    default:
      if (o.choices && !o.choices.includes(v)) throw new ConfigError(`${source} must be one of ${o.choices.join(', ')}, got ${JSON.stringify(v)}`);
      return v;
  }
}

/** Reads flags (argv) and the environment into one config. */
export function loadConfig(argv: string[], env: NodeJS.ProcessEnv = process.env): ServerConfig {
  const config: ServerConfig = { ...SERVER_DEFAULTS, modelDirs: [...SERVER_DEFAULTS.modelDirs], modelNames: [], apiKeys: [], corsOrigins: [] };
  const flags = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (!arg.startsWith('--')) throw new ConfigError(`unexpected argument ${JSON.stringify(arg)}`);
    const [name, inline] = arg.slice(2).split(/=(.*)/s, 2) as [string, string | undefined];
    const o = OPTIONS.find((x) => x.flag === name);
    if (!o) throw new ConfigError(`unknown option --${name} (see calm serve --help)`);
    let value: string;
    if (inline !== undefined) value = inline;
    else if (o.kind === 'bool' && (argv[i + 1] === undefined || argv[i + 1]!.startsWith('--'))) value = 'true';
    else {
      const next = argv[++i];
      if (next === undefined) throw new ConfigError(`--${name} needs a value`);
      value = next;
    }
    // A list flag given again adds to it (--model a --model b); any other flag's last value wins.
    const before = flags.get(name);
    flags.set(name, o.kind === 'list' && before !== undefined ? `${before},${value}` : value);
  }
  let keysFile: string | undefined;
  for (const o of OPTIONS) {
    const envValue = (o.alias ? env[o.alias] : undefined) ?? env[envName(o.flag)];
    const flagValue = flags.get(o.flag);
    const raw = flagValue ?? envValue;
    if (raw === undefined) continue;
    const source = flagValue !== undefined ? `--${o.flag}` : o.alias && env[o.alias] !== undefined ? o.alias : envName(o.flag);
    if (o.flag === 'api-keys-file') {
      keysFile = raw;
      continue;
    }
    (config as unknown as Record<string, unknown>)[o.key] = convert(o, raw, source);
  }
  if (keysFile) {
    let text: string;
    try {
      text = readFileSync(keysFile, 'utf8');
    } catch (err) {
      throw new ConfigError(`cannot read the API keys file ${keysFile}: ${(err as Error).message}`);
    }
    config.apiKeys.push(...text.split('\n').map((l) => l.trim()).filter((l) => l && !l.startsWith('#')));
  }
  if (config.port > 65535) throw new ConfigError(`port must be at most 65535, got ${config.port}`);
  for (const [flag, value] of [['max-running', config.maxRunning], ['block-size', config.blockSize], ['max-prefill-positions', config.maxPrefillPositions],
    ['pool-size', config.defaultPoolSize], ['max-pool-size', config.maxPoolSize], ['max-step-draws', config.maxStepDraws], ['max-n', config.maxN],
    ['exact-max-draws', config.exactMaxDraws], ['read-timeout-ms', config.readTimeoutMs]] as const) {
    if (value < 1) throw new ConfigError(`${flag} must be at least 1`);
  }
  if (config.maxBatchedPositions < config.maxRunning) {
    throw new ConfigError(`max-batched-positions (${config.maxBatchedPositions}) must be at least max-running (${config.maxRunning}): every running sequence needs its position each step`);
  }
  if (config.defaultPoolSize > config.maxPoolSize) {
    throw new ConfigError(`pool-size (${config.defaultPoolSize}) must not exceed max-pool-size (${config.maxPoolSize})`);
  }
  if (config.modelDirs.length === 0) throw new ConfigError('model must name at least one bundle directory');
  if (config.modelNames.length > 0 && config.modelNames.length !== config.modelDirs.length) {
    throw new ConfigError(`model-name gives ${config.modelNames.length} id(s) for ${config.modelDirs.length} model(s): give one id per --model, in the same order, or none`);
  }
  const repeated = config.modelNames.find((id, i) => config.modelNames.indexOf(id) !== i);
  if (repeated !== undefined) throw new ConfigError(`model-name ${JSON.stringify(repeated)} is given twice: every served model needs its own id`);
  config.promptPolicy = config.promptPolicy as PromptPolicy;
  return config;
}

export function helpText(): string {
  const rows = OPTIONS.map((o) => {
    const def = o.flag === 'api-keys-file' ? '' : String((SERVER_DEFAULTS as unknown as Record<string, unknown>)[o.key] ?? '');
    const env = [o.alias, envName(o.flag)].filter(Boolean).join(', ');
    return `  --${o.flag.padEnd(20)} ${o.help}${o.choices ? ` (${o.choices.join('|')})` : ''}\n  ${''.padEnd(22)} env ${env}${def ? `; default ${def}` : ''}`;
  });
  return `usage: calm serve [options]\n\nEvery option can also be set by its environment variable; flags win.\n\n${rows.join('\n')}`;
}
