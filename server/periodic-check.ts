// The leader's housekeeping (reaping tombstones, expiring sessions, keeping kv-recovery rules,
// aborting orphaned restores) is each a check run every so often on every server; the check itself
// decides whether this server leads and what to propose. This is the timer they share.
export abstract class PeriodicCheck {
  private timer: NodeJS.Timeout | null = null;

  /** One round at `nowMs` (also called directly by tests). */
  abstract check(nowMs: number): Promise<void>;

  /** How often `check` runs once started. */
  protected abstract checkEveryMs(): number;

  start(): void {
    this.timer = setInterval(() => void this.check(Date.now()), this.checkEveryMs());
    // Housekeeping never keeps the process alive.
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
