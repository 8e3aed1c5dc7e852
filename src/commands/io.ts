// What the commands share: where they write (the process's streams, or a capture in tests), and
// the error for a bad command line (reported with exit status 2).

/** A bad option or argument; the message says which and why. */
export class UsageError extends Error {}

export interface CommandIO {
  stdout: (s: string) => void;
  stderr: (s: string) => void;
  /** progress is redrawn on a terminal and written as lines otherwise */
  stderrIsTTY: boolean;
}

export const PROCESS_IO: CommandIO = {
  stdout: (s) => void process.stdout.write(s),
  stderr: (s) => void process.stderr.write(s),
  get stderrIsTTY() {
    return process.stderr.isTTY === true;
  },
};
