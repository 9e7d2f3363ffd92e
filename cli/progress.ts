// Progress of a long operation on stderr (stdout keeps the result): on a terminal one line redrawn
// in place with a bar when the total is known; otherwise (a pipe, a log file, CI) a plain line at
// most every few seconds, so logs stay readable.

export interface ProgressOutput {
  readonly isTTY?: boolean;
  readonly columns?: number;
  write(text: string): unknown;
}

const PLAIN_EVERY_MS = 2000;
const TTY_EVERY_MS = 100;
const BAR_WIDTH = 24;

export class ProgressLine {
  /** From the start: an operation over within the first interval shows no progress at all. */
  private lastMs: number;
  private drawn = false;

  constructor(
    private readonly out: ProgressOutput = process.stderr,
    private readonly now: () => number = Date.now,
  ) {
    this.lastMs = now();
  }

  /** Shows `text` (and a bar for `done`/`total` when the total is known), rate-limited. */
  update(text: string, done?: number, total?: number | null): void {
    const nowMs = this.now();
    if (nowMs - this.lastMs < (this.out.isTTY === true ? TTY_EVERY_MS : PLAIN_EVERY_MS)) return;
    this.lastMs = nowMs;
    this.draw(text, done, total);
  }

  /** Ends the progress display: clears the line on a terminal; nothing more on a plain output. */
  finish(): void {
    if (this.out.isTTY === true && this.drawn) this.out.write('\r\x1b[K');
    this.drawn = false;
  }

  private draw(text: string, done?: number, total?: number | null): void {
    const known = done !== undefined && total !== undefined && total !== null && total > 0;
    const fraction = known ? Math.min(1, done / total) : 0;
    if (this.out.isTTY !== true) {
      this.out.write(`${text}${known ? ` (${Math.floor(fraction * 100)}%)` : ''}\n`);
      return;
    }
    const filled = Math.round(fraction * BAR_WIDTH);
    const bar = known ? `[${'#'.repeat(filled)}${'-'.repeat(BAR_WIDTH - filled)}] ${String(Math.floor(fraction * 100)).padStart(3)}% ` : '';
    const line = `${bar}${text}`;
    const width = this.out.columns ?? 80;
    this.out.write(`\r\x1b[K${line.length >= width ? line.slice(0, width - 1) : line}`);
    this.drawn = true;
  }
}

/** 1234567 -> "1.2 MB" (decimal units, as `consul snapshot` and most tools print them). */
export function formatBytes(n: number): string {
  if (n < 1000) return `${n} B`;
  const units = ['kB', 'MB', 'GB', 'TB'];
  let value = n / 1000;
  let unit = 0;
  while (value >= 1000 && unit < units.length - 1) {
    value /= 1000;
    unit++;
  }
  return `${value.toFixed(1)} ${units[unit]}`;
}

/** 1234567 -> "1,234,567". */
export function formatCount(n: number): string {
  return n.toLocaleString('en-US');
}
