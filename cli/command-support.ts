// What every konsulctl subcommand shares: its client from the global options, stdout writing, and
// the error boundary that turns expected failures into one line on stderr and an exit code.
import type { Command } from 'commander';
import { UsageError } from './args.ts';
import { CliError, KonsulClient } from './http-client.ts';

/** Exit codes: 0 success, 1 the operation failed, 2 the command line was wrong. */
export const EXIT_FAILURE = 1;
export const EXIT_USAGE = 2;

export function clientFor(command: Command): KonsulClient {
  return KonsulClient.fromOptions(command.optsWithGlobals(), process.env);
}

/** Writes to stdout; resolves once the data is handed to the OS, so large outputs are complete. */
export function writeStdout(data: string | Uint8Array): Promise<void> {
  return new Promise((resolve, reject) => {
    process.stdout.write(data, (err) => (err ? reject(err) : resolve()));
  });
}

export function reportError(message: string, options: { bare?: boolean } = {}): void {
  process.stderr.write(options.bare ? `${message}\n` : `konsulctl: ${message}\n`);
}

/**
 * Wraps a commander action: CliError and UsageError are reported as one line on stderr and set the
 * exit code; anything else is a bug and keeps its stack trace.
 */
export function handleErrors<Args extends unknown[]>(action: (...args: Args) => Promise<void>): (...args: Args) => Promise<void> {
  return async (...args) => {
    try {
      await action(...args);
    } catch (err) {
      if (err instanceof CliError) {
        reportError(err.message, { bare: err.bare });
        process.exitCode = err.exitCode;
      } else if (err instanceof UsageError) {
        reportError(`${err.message} (see --help)`);
        process.exitCode = EXIT_USAGE;
      } else {
        throw err;
      }
    }
  };
}
