// What `konsul server` and `konsul agent` do once started: hold the running process in a
// Supervisor (lib/service.ts) with its companions (the server's storage watchdog), and stop it on
// SIGINT / SIGTERM. A second signal exits at once.
import type { Supervisor } from '../lib/service.ts';

export function stopOnSignals(supervisor: Supervisor, shuttingDown: string): void {
  let signals = 0;
  const onSignal = (sig: NodeJS.Signals) => {
    signals++;
    if (signals > 1) {
      process.stderr.write(`konsul: second ${sig}, exiting at once\n`);
      process.exit(130);
    }
    process.stdout.write(`konsul: ${sig} received, ${shuttingDown}\n`);
    supervisor.stop().then(
      () => process.exit(0),
      (err: unknown) => {
        process.stderr.write(`konsul: error during shutdown: ${(err as Error).message}\n`);
        process.exit(1);
      },
    );
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
}

/** The "<name> listening on host:port (protocols)" lines of the plugins' listeners. */
export function listenerLines(listeners: readonly { readonly name: string; readonly host: string; readonly port: number; readonly protocols: string }[]): string {
  return listeners.map((l) => `konsul: ${l.name} listening on ${l.host}:${l.port} (${l.protocols})\n`).join('');
}
