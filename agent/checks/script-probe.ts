// The script check (Consul's CheckMonitor): runs Args without a shell in its own process group,
// stdout and stderr into one circular buffer of outputMaxBytes. Exit 0 is passing, 1 warning,
// anything else (another code, a signal) critical. On timeout the whole group is killed and the
// check is critical at once ("Timed out (30s) running check", the captured output after a blank
// line), bypassing the thresholds as Consul's Notify does; a command that cannot start is critical
// at once too. The probe settles only when the child is gone, so runs never overlap.
import { spawn } from 'node:child_process';
import { formatGoDuration } from '../../lib/duration.ts';
import { TailBuffer } from './output.ts';
import { timedOut, type ProbeContext, type ProbeResult } from './probe.ts';

/** How long to wait for the killed group's pipes to close before answering anyway. */
const KILL_SETTLE_MS = 1000;

export function scriptProbe(args: readonly string[], ctx: ProbeContext): Promise<ProbeResult> {
  return new Promise((resolve) => {
    const [command, ...rest] = args;
    if (command === undefined) {
      resolve({ status: 'critical', output: 'exec: no command', bypassThresholds: true });
      return;
    }
    const output = new TailBuffer(ctx.outputMaxBytes);
    let finished = false;
    let killed = false;
    let killTimer: NodeJS.Timeout | null = null;
    const finish = (result: ProbeResult) => {
      if (finished) return;
      finished = true;
      ctx.signal.removeEventListener('abort', onAbort);
      if (killTimer) clearTimeout(killTimer);
      resolve(result);
    };
    const child = spawn(command, rest, { detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout.on('data', (chunk: Buffer) => output.write(chunk));
    child.stderr.on('data', (chunk: Buffer) => output.write(chunk));
    const killedResult = (): ProbeResult => {
      if (!timedOut(ctx.signal)) return { status: 'critical', output: 'check stopped', bypassThresholds: true };
      let message = `Timed out (${formatGoDuration(ctx.timeoutMs * 1e6)}) running check`;
      const captured = output.textWithCaptureNote();
      if (captured !== '') message += `\n\n${captured}`;
      return { status: 'critical', output: message, bypassThresholds: true };
    };
    child.on('error', (err: NodeJS.ErrnoException) => {
      const text =
        err.code === 'ENOENT'
          ? command.includes('/')
            ? `fork/exec ${command}: no such file or directory`
            : `exec: ${JSON.stringify(command)}: executable file not found in $PATH`
          : err.code === 'EACCES'
            ? `fork/exec ${command}: permission denied`
            : err.message;
      finish({ status: 'critical', output: text, bypassThresholds: true });
    });
    child.on('close', (code, signal) => {
      if (killed) {
        finish(killedResult());
        return;
      }
      const captured = output.textWithCaptureNote();
      if (code === 0) finish({ status: 'passing', output: captured });
      else if (code === 1 && signal === null) finish({ status: 'warning', output: captured });
      else finish({ status: 'critical', output: captured });
    });
    const onAbort = () => {
      killed = true;
      if (child.pid !== undefined) {
        try {
          process.kill(-child.pid, 'SIGKILL');
        } catch {
          child.kill('SIGKILL');
        }
      }
      // A grandchild that escaped the group may hold the pipes open: answer anyway after a while.
      killTimer = setTimeout(() => finish(killedResult()), KILL_SETTLE_MS);
      killTimer.unref();
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}
