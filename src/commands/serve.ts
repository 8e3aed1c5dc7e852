// `calm serve`: the HTTP server. SIGTERM or SIGINT drain it, then the process exits 0 (within
// --drain-grace-ms, whatever the engine thread is doing). It exits 1 at once when it cannot
// listen, and when the engine thread dies, so that a supervisor (Kubernetes) restarts it.
import { ConfigError, helpText, loadConfig, type ServerConfig } from '../config.js';
import { drainBudgetMs, startServer } from '../server/start.js';

/** Time to let the last responses reach their clients before exiting after an engine death. */
const FLUSH_MS = 250;

export async function serveCommand(argv: string[]): Promise<number> {
  if (argv.includes('--help') || argv.includes('-h')) {
    console.log(helpText());
    return 0;
  }
  let config;
  try {
    config = loadConfig(argv);
  } catch (err) {
    if (err instanceof ConfigError) {
      console.error(`calm serve: ${err.message}`);
      return 2;
    }
    throw err;
  }
  return runServer(config);
}

/** Starts the server and owns the process from then on: it exits 1 if it cannot start or the engine dies, 0 after a drain. */
export async function runServer(config: ServerConfig): Promise<number> {
  let server;
  try {
    server = await startServer(config, {
      onEngineDeath: () => setTimeout(() => process.exit(1), FLUSH_MS),
    });
  } catch (err) {
    console.error(`calm serve: ${(err as Error).message}`);
    return 1;
  }
  const running = server;
  return new Promise<number>(() => {
    const stop = (signal: string) => {
      running.app.log.info({ signal }, 'shutting down');
      // A backstop: the drain bounds itself, but nothing may keep the process past its budget.
      setTimeout(() => process.exit(1), drainBudgetMs(config.drainGraceMs) + 250).unref();
      running.drain().then(() => process.exit(0), (err: unknown) => {
        running.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
