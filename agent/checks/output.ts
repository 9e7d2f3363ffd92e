// Check output limits, the three ways Consul applies them (agent/checks/check.go):
// - TTL updates keep the head: "<first N bytes> ... (captured N of M bytes)" (CheckTTL.SetStatus).
// - Scripts keep the tail in a circular buffer and say so: "Captured N of M bytes\n...\n<last N bytes>".
// - HTTP bodies keep the tail in the same circular buffer, silently.
// Sizes are bytes (Go's len of a string), not characters.

/** Consul's CheckTTL.SetStatus truncation. */
export function truncateHead(output: string, maxBytes: number): string {
  const bytes = Buffer.from(output, 'utf8');
  if (bytes.length <= maxBytes) return output;
  return `${bytes.subarray(0, maxBytes).toString('utf8')} ... (captured ${maxBytes} of ${bytes.length} bytes)`;
}

/**
 * armon/circbuf: keeps the last `maxBytes` bytes written and counts everything, so a probe can read a
 * body or a child's output of any size in constant memory.
 */
export class TailBuffer {
  private chunks: Buffer[] = [];
  private kept = 0;
  private written = 0;

  constructor(readonly maxBytes: number) {}

  write(chunk: Buffer | string): void {
    const data = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk;
    this.written += data.length;
    if (this.maxBytes <= 0) return;
    if (data.length >= this.maxBytes) {
      this.chunks = [data.subarray(data.length - this.maxBytes)];
      this.kept = this.maxBytes;
      return;
    }
    this.chunks.push(data);
    this.kept += data.length;
    while (this.kept > this.maxBytes) {
      const first = this.chunks[0]!;
      const excess = this.kept - this.maxBytes;
      if (first.length <= excess) {
        this.chunks.shift();
        this.kept -= first.length;
      } else {
        this.chunks[0] = first.subarray(excess);
        this.kept -= excess;
      }
    }
  }

  /** Bytes written in total, kept or not. */
  totalWritten(): number {
    return this.written;
  }

  /** The kept bytes as text (the tail of what was written). */
  text(): string {
    return Buffer.concat(this.chunks).toString('utf8');
  }

  /** The script checks' form: the kept tail, prefixed with a note when something was dropped. */
  textWithCaptureNote(): string {
    const tail = this.text();
    return this.written > this.kept ? `Captured ${this.kept} of ${this.written} bytes\n...\n${tail}` : tail;
  }
}
