// A real `calm serve` process whose engine has test faults (src/engine/step-runner.ts,
// FaultInjection), which no command-line flag can set. argv[2]: a JSON object merged into the
// server config (port, faults, drainGraceMs...).
import { SERVER_DEFAULTS } from '../../src/config.js';
import { runServer } from '../../src/commands/serve.js';

const overrides = JSON.parse(process.argv[2] ?? '{}') as Partial<typeof SERVER_DEFAULTS>;
process.exitCode = await runServer({ ...SERVER_DEFAULTS, host: '127.0.0.1', intraOpThreads: 1, logLevel: 'info', ...overrides });
