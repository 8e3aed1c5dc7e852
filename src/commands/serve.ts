// `calm serve`: the HTTP server. SIGTERM or SIGINT drain it, then the process exits 0.
import { ConfigError, helpText, loadConfig } from '../config.js';
import { startServer } from '../server/start.js';

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
  const server = await startServer(config);
  return new Promise<number>((resolve) => {
    const stop = (signal: string) => {
      server.app.log.info({ signal }, 'shutting down');
      server.drain().then(() => resolve(0), (err: unknown) => {
        server.app.log.error({ err }, 'shutdown failed');
        resolve(1);
      });
    };
    process.once('SIGTERM', () => stop('SIGTERM'));
    process.once('SIGINT', () => stop('SIGINT'));
  });
}
