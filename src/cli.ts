#!/usr/bin/env node
// `calm <command>`: the command-line entry point.
import { benchCommand } from './commands/bench.js';
import { evalCommand } from './commands/eval.js';
import { generateCommand } from './commands/generate.js';
import { inspectCommand } from './commands/inspect.js';
import { serveCommand } from './commands/serve.js';

const USAGE = `usage: calm <command> [options]

commands:
  serve           the OpenAI-compatible HTTP server (calm serve --help)
  generate        complete a prompt from the command line
  bench           serving benchmark against an OpenAI-compatible endpoint (calm bench --help)
  inspect [DIR]   print a model bundle's manifest and check that its graphs load
  eval            BrierLM or autoencoder reconstruction on a JSONL corpus (calm eval --help)

run \`calm <command> --help\` for a command's options`;

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv;
  switch (command) {
    case 'serve':
      return serveCommand(rest);
    case 'generate':
      return generateCommand(rest);
    case 'bench':
      return benchCommand(rest);
    case 'inspect':
      return inspectCommand(rest);
    case 'eval':
      return evalCommand(rest);
    case undefined:
    case '-h':
    case '--help':
      console.log(USAGE);
      return command === undefined ? 1 : 0;
    default:
      console.error(`calm: unknown command ${JSON.stringify(command)}\n\n${USAGE}`);
      return 2;
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err: unknown) => {
    console.error(`calm: ${err instanceof Error ? err.message : String(err)}`);
    process.exitCode = 1;
  },
);
