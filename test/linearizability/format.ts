// Rendering of operations and histories for failure messages.
import type { Operation } from './history.ts';

function q(v: string | null | undefined): string {
  return v === null || v === undefined ? 'null' : JSON.stringify(v);
}

/** `put("v1") -> ok`, `get -> "v1"`, `cas(null -> "v1") -> false`, `delete -> ?`. */
export function describeOp(op: Operation): string {
  let call: string;
  switch (op.kind) {
    case 'put':
      call = `put(${q(op.value)})`;
      break;
    case 'get':
      call = 'get';
      break;
    case 'cas':
      call = `cas(${q(op.expected)} -> ${q(op.value)})`;
      break;
    case 'delete':
      call = 'delete';
      break;
  }
  let ret: string;
  if (op.completeMs === null) ret = '? (no answer)';
  else if (op.kind === 'get') ret = op.result.ok ? q(op.result.value) : 'error';
  else ret = String(op.result.ok);
  return `${call} -> ${ret}`;
}

export interface FormatOptions {
  /** Times are printed relative to this instant (default: earliest invoke among the ops). */
  originMs?: number;
  /** Labels to print in front of particular operations (e.g. '#3'). */
  labels?: Map<Operation, string>;
  /** Markers to print after particular operations (e.g. '<-- stale read'). */
  markers?: Map<Operation, string>;
}

/** One operation per line, sorted by invoke time: label, client, [invoke, complete], call -> result. */
export function formatHistory(ops: readonly Operation[], options: FormatOptions = {}): string {
  if (ops.length === 0) return '  (no operations)';
  const origin = options.originMs ?? ops.reduce((m, o) => Math.min(m, o.invokeMs), Infinity);
  const sorted = [...ops].sort((a, b) => a.invokeMs - b.invokeMs);
  const fmt = (ms: number): string => `${+(ms - origin).toFixed(3)}`;
  return sorted
    .map((op) => {
      const label = options.labels?.get(op);
      const marker = options.markers?.get(op);
      const span = `[${fmt(op.invokeMs)}, ${op.completeMs === null ? '∞' : fmt(op.completeMs)}]`;
      return (
        `  ${label !== undefined ? `${label} ` : ''}client ${op.clientId} ${span.padEnd(18)} ${op.key}: ${describeOp(op)}` +
        (marker !== undefined ? `   ${marker}` : '')
      );
    })
    .join('\n');
}
