// Waiting for a started Konsul process (server or agent) to print the line that says it is ready.
import type { ChildProcess } from 'node:child_process';

/**
 * Resolves with the ready line's match once `output()` contains it. Rejects, with everything the
 * process printed, when it exits first or when `timeoutMs` passes — then the process is killed by
 * its PID, so a start that hangs never outlives the test.
 */
export function waitForReadyLine(
  child: ChildProcess,
  output: () => string,
  exited: Promise<number | null>,
  readyLine: RegExp,
  options: { what: string; timeoutMs: number },
): Promise<RegExpExecArray> {
  return new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => {
      try {
        process.kill(child.pid!, 'SIGKILL');
      } catch {
        // gone
      }
      reject(new Error(`${options.what} did not start within ${options.timeoutMs} ms:\n${output()}`));
    }, options.timeoutMs);
    const onData = () => {
      const m = readyLine.exec(output());
      if (m) {
        clearTimeout(timer);
        child.stdout!.off('data', onData);
        resolve(m);
      }
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${options.what} exited with ${code} before it was ready:\n${output()}`));
    });
  });
}
