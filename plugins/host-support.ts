// Pieces both processes' plugin hosts (server/plugin-host.ts, agent/plugin-host.ts) are built from.
import type { LogLevel } from '../lib/config-values.ts';
import type { PluginLogger, PluginLogLevel } from './plugin.ts';

const ORDER: readonly string[] = ['trace', 'debug', 'info', 'warn', 'error', 'fatal'];

/** `konsul: [level] message` on stderr when the process's log level lets it through. */
export function processLogger(logLevel: LogLevel): PluginLogger {
  return (level: PluginLogLevel, message: string) => {
    if (logLevel === 'silent' || ORDER.indexOf(level) < ORDER.indexOf(logLevel)) return;
    process.stderr.write(`konsul: [${level}] ${message}\n`);
  };
}

/**
 * A watch callback that runs outside the code that noticed the change (the FSM's apply, a cache
 * refresh) and once for any number of changes noticed before it ran.
 */
export function coalesced(onChange: () => void, log: PluginLogger): () => void {
  let pending = false;
  return () => {
    if (pending) return;
    pending = true;
    setImmediate(() => {
      pending = false;
      try {
        onChange();
      } catch (err) {
        log('error', `a plugin's watch callback failed: ${(err as Error).stack ?? String(err)}`);
      }
    });
  };
}
