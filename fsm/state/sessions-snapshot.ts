// The sessions' section of the FSM snapshot (fsm/snapshot.ts), and its move into another index space
// for a snapshot restore (fsm/restore.ts).
//
// Payload: UTF-8 JSON {"v":1, "index", "clockMs", "sessions": [{session fields..., "renewIndex"}],
// "lockDelays": [[key, untilMs]]}, sessions in ID order and lock-delays in key order, every object
// built field by field: two replicas with the same state write the same bytes. Each session is
// checked on reading with the validator of the command that creates one.

import { validateSessionCommand } from './session-commands.ts';
import type { Session, SessionsTableDump } from './sessions.ts';

const FORMAT = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** True when the table was never used (the section is then left out, keeping older snapshots' bytes). */
export function isEmptySessionsDump(dump: SessionsTableDump): boolean {
  return dump.index === 0 && dump.clockMs === 0 && dump.sessions.length === 0 && dump.lockDelays.length === 0;
}

export function encodeSessionsSection(dump: SessionsTableDump): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      v: FORMAT,
      index: dump.index,
      clockMs: dump.clockMs,
      sessions: dump.sessions.map(({ session: s, renewIndex }) => ({
        ID: s.ID,
        Name: s.Name,
        Node: s.Node,
        LockDelay: s.LockDelay,
        Behavior: s.Behavior,
        TTL: s.TTL,
        NodeChecks: s.NodeChecks,
        ServiceChecks: s.ServiceChecks === null ? null : s.ServiceChecks.map((c) => ({ ID: c.ID, Namespace: c.Namespace })),
        Checks: s.Checks,
        CreateIndex: s.CreateIndex,
        ModifyIndex: s.ModifyIndex,
        renewIndex,
      })),
      lockDelays: dump.lockDelays.map(({ key, untilMs }) => [key, untilMs]),
    }),
  );
}

/** Parses and checks a sessions section; `fail` throws the snapshot format's error. */
export function decodeSessionsSection(bytes: Uint8Array, fail: (message: string) => never): SessionsTableDump {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return fail('sessions section is not UTF-8 JSON');
  }
  const o = asObject(parsed);
  if (o === null) return fail('sessions section is not an object');
  if (o['v'] !== FORMAT) return fail(`unsupported sessions section format ${JSON.stringify(o['v'])}`);
  const index = readCount(o['index'], 'index', fail);
  const clockMs = readCount(o['clockMs'], 'clockMs', fail);
  if (!Array.isArray(o['sessions'])) return fail('sessions must be an array');
  const sessions: { session: Session; renewIndex: number }[] = [];
  let previousId: string | undefined;
  for (const item of o['sessions'] as unknown[]) {
    const record = readSession(item, fail);
    if (previousId !== undefined && previousId >= record.session.ID) fail('sessions out of order');
    previousId = record.session.ID;
    sessions.push(record);
  }
  if (!Array.isArray(o['lockDelays'])) return fail('lockDelays must be an array');
  const lockDelays: { key: string; untilMs: number }[] = [];
  let previousKey: string | undefined;
  for (const item of o['lockDelays'] as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string') fail('lock-delay entries must be [key, untilMs]');
    const [key, until] = item as [string, unknown];
    if (previousKey !== undefined && previousKey >= key) fail('lock-delays out of order');
    previousKey = key;
    lockDelays.push({ key, untilMs: readCount(until, 'lock-delay untilMs', fail) });
  }
  return { index, clockMs, sessions, lockDelays };
}

/**
 * The table moved to a restore at `index` (see fsm/restore.ts): indexes above it come down to it,
 * and the table's index becomes it. Lock-delays are wall-clock times and stay as they are.
 */
export function sessionsForRestoreAt(dump: SessionsTableDump, index: number): SessionsTableDump {
  const cap = (n: number): number => (n > index ? index : n);
  return {
    ...dump,
    index,
    sessions: dump.sessions.map(({ session, renewIndex }) => ({
      session: session.CreateIndex > index || session.ModifyIndex > index ? { ...session, CreateIndex: cap(session.CreateIndex), ModifyIndex: cap(session.ModifyIndex) } : session,
      renewIndex: cap(renewIndex),
    })),
  };
}

function readSession(value: unknown, fail: (message: string) => never): { session: Session; renewIndex: number } {
  const o = asObject(value);
  if (o === null) return fail('session is not an object');
  const serviceChecks = o['ServiceChecks'];
  // The same rules as the command that creates a session.
  const problem = validateSessionCommand({
    type: 'sessionCreate',
    id: o['ID'],
    name: o['Name'],
    node: o['Node'],
    lockDelayNs: o['LockDelay'],
    behavior: o['Behavior'],
    ttl: o['TTL'],
    nodeChecks: o['NodeChecks'],
    serviceChecks: Array.isArray(serviceChecks) ? serviceChecks.map((c) => ({ id: asObject(c)?.['ID'], namespace: asObject(c)?.['Namespace'] })) : serviceChecks,
    checks: o['Checks'],
  });
  if (problem !== null) return fail(`bad session: ${problem}`);
  const session: Session = {
    ID: o['ID'] as string,
    Name: o['Name'] as string,
    Node: o['Node'] as string,
    LockDelay: o['LockDelay'] as number,
    Behavior: o['Behavior'] as Session['Behavior'],
    TTL: o['TTL'] as string,
    NodeChecks: o['NodeChecks'] as string[] | null,
    ServiceChecks: Array.isArray(serviceChecks) ? serviceChecks.map((c) => ({ ID: c.ID as string, Namespace: c.Namespace as string })) : null,
    Checks: o['Checks'] as string[] | null,
    CreateIndex: readCount(o['CreateIndex'], 'CreateIndex', fail),
    ModifyIndex: readCount(o['ModifyIndex'], 'ModifyIndex', fail),
  };
  const expected = ['ID', 'Name', 'Node', 'LockDelay', 'Behavior', 'TTL', 'NodeChecks', 'ServiceChecks', 'Checks', 'CreateIndex', 'ModifyIndex', 'renewIndex'];
  for (const field of Object.keys(o)) if (!expected.includes(field)) fail(`session: unknown field ${field}`);
  return { session, renewIndex: readCount(o['renewIndex'], 'renewIndex', fail) };
}

function readCount(value: unknown, what: string, fail: (message: string) => never): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return fail(`${what} must be a non-negative safe integer`);
  return value;
}

function asObject(value: unknown): Record<string, unknown> | null {
  return typeof value === 'object' && value !== null && !Array.isArray(value) ? (value as Record<string, unknown>) : null;
}
