// The shape of a recorded client operation on the KV store, and a small recorder for tests.
//
// A history is a list of operations, each with the time the client invoked it and the time it saw
// the answer. `completeMs: null` means the client never learned the outcome (timeout, connection
// reset, killed leader): the operation may or may not have taken effect, at any instant after its
// invoke. Times come from a clock the caller passes in; the checker itself never reads a clock for
// ordering.

export type OpKind = 'put' | 'get' | 'cas' | 'delete';

export interface OpResult {
  /**
   * put/delete: true when acknowledged (a completed put/delete with ok=false is taken as a definite
   * rejection, i.e. no effect). get: true when the read succeeded (a completed get with ok=false is
   * ignored). cas: true when the swap happened, false when the current value did not match.
   */
  ok: boolean;
  /** get only: the value read, or null when the key was missing. */
  value?: string | null;
}

export interface Operation {
  clientId: number;
  kind: OpKind;
  key: string;
  /** put/cas: the value written. */
  value?: string;
  /** cas only: the value the key must hold for the swap to happen; null = key must be missing. */
  expected?: string | null;
  invokeMs: number;
  /** null = no answer, outcome unknown. */
  completeMs: number | null;
  result: OpResult;
}

export type History = Operation[];

export interface OpInput {
  kind: OpKind;
  key: string;
  value?: string;
  expected?: string | null;
}

/** A pending operation returned by {@link HistoryRecorder.invoke}; settle it exactly once. */
export interface PendingOp {
  /** The client got an answer. */
  complete(result: OpResult): void;
  /** The client got no answer (timeout, reset): the outcome is unknown. */
  unknown(): void;
}

/**
 * Records operations as tests perform them:
 *
 *   const op = rec.invoke(client, { kind: 'put', key: 'a', value: '1' });
 *   try { op.complete({ ok: await put(...) }); } catch { op.unknown(); }
 *
 * Operations still pending when {@link history} is called are reported with unknown outcome.
 */
export class HistoryRecorder {
  readonly #clock: () => number;
  readonly #ops: { op: Operation; settled: boolean }[] = [];

  constructor(clock: () => number) {
    this.#clock = clock;
  }

  invoke(clientId: number, input: OpInput): PendingOp {
    const op: Operation = {
      clientId,
      kind: input.kind,
      key: input.key,
      invokeMs: this.#clock(),
      completeMs: null,
      result: { ok: false },
    };
    if (input.value !== undefined) op.value = input.value;
    if (input.expected !== undefined) op.expected = input.expected;
    const slot = { op, settled: false };
    this.#ops.push(slot);
    const settle = (): void => {
      if (slot.settled) throw new Error(`operation already settled: ${op.kind} ${op.key} by client ${clientId}`);
      slot.settled = true;
    };
    const clock = this.#clock;
    return {
      complete(result: OpResult): void {
        settle();
        op.completeMs = clock();
        op.result = { ...result };
      },
      unknown(): void {
        settle();
        op.completeMs = null;
      },
    };
  }

  /** A copy of the recorded operations, in invoke order. */
  history(): History {
    return this.#ops.map(({ op }) => ({ ...op, result: { ...op.result } }));
  }

  get size(): number {
    return this.#ops.length;
  }
}
