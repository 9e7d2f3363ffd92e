// A Service (lib/service.ts) that runs a check every so often: the leader's housekeeping (tombstone
// reaper, session TTLs, kv-recovery keeper, restore watchdog) and the other timers of a process
// share this one start/stop skeleton. The check itself decides whether there is anything to do
// (whether this server leads, whether something expired).
//
// It lives in agent/core, the lowest layer allowed timers that every process layer may import
// (lib/ is pure: no clock, no timers).
import type { Service } from '../../lib/service.ts';

export abstract class PeriodicTask implements Service {
  private timer: ReturnType<typeof setInterval> | null = null;

  /** One round at `nowMs` (also called directly by tests). */
  abstract check(nowMs: number): Promise<void>;

  /** How often `check` runs once started. */
  protected abstract checkEveryMs(): number;

  /** The class name unless a subclass says better. */
  get name(): string {
    return this.constructor.name;
  }

  get running(): boolean {
    return this.timer !== null;
  }

  start(): void {
    if (this.timer !== null) return;
    const timer = setInterval(() => void this.check(Date.now()), this.checkEveryMs());
    // A timer never keeps the process alive on its own.
    (timer as { unref?: () => void }).unref?.();
    this.timer = timer;
  }

  stop(): void {
    if (this.timer !== null) clearInterval(this.timer);
    this.timer = null;
  }
}

/** A PeriodicTask from a function (for timers that need no class of their own); a failed round goes to onError. */
export function periodicTask(name: string, everyMs: number, round: (nowMs: number) => void | Promise<void>, onError: (err: unknown) => void = () => undefined): PeriodicTask {
  return new (class extends PeriodicTask {
    override get name(): string {
      return name;
    }
    async check(nowMs: number): Promise<void> {
      try {
        await round(nowMs);
      } catch (err) {
        onError(err);
      }
    }
    protected checkEveryMs(): number {
      return everyMs;
    }
  })();
}
