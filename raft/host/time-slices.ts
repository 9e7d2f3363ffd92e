// Long state-machine work (encoding a snapshot view, feeding a restore) done in turns: the event
// loop gets a turn whenever the work took a slice of CPU, so heartbeats and HTTP never wait much
// longer than one slice (ADR 0015).
import type { StateMachineSnapshot } from './state-machine.ts';

/** CPU time such work may take before it lets the event loop run. */
export const SLICE_MS = 8;

export function yieldToEventLoop(): Promise<void> {
  return new Promise((resolve) => setImmediate(resolve));
}

/** Counts CPU time spent between turns; `pause()` yields once a slice is used up. */
export class SliceClock {
  private spentMs = 0;
  private startedAt = 0;

  constructor(private readonly sliceMs = SLICE_MS) {}

  start(): void {
    this.startedAt = performance.now();
  }

  stop(): void {
    this.spentMs += performance.now() - this.startedAt;
  }

  async pause(): Promise<void> {
    if (this.spentMs < this.sliceMs) return;
    await yieldToEventLoop();
    this.spentMs = 0;
  }
}

/** The view's pieces, each bounded work, with a turn for the event loop after every slice of CPU. */
export async function* timeSlicedPieces(view: StateMachineSnapshot, pieceBytes: number): AsyncGenerator<Uint8Array> {
  const pieces = view.chunks(pieceBytes);
  const clock = new SliceClock();
  try {
    for (;;) {
      clock.start();
      const next = pieces.next();
      clock.stop();
      if (next.done === true) return;
      yield next.value;
      await clock.pause();
    }
  } finally {
    pieces.return?.();
  }
}
