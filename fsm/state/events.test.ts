// The events ring: what a fire records, the 256-event bound, IDs whose Consul index is the Raft
// index, the snapshot section, and the watchers.
import t from 'tap';
import { encodeBase64 } from '../base64.ts';
import { encodeCommand, type EventFireCommand } from '../commands.ts';
import { KonsulFsm } from '../konsul-fsm.ts';
import { decodeSnapshot, encodeSnapshot, SnapshotFormatError, type FsmState } from '../snapshot.ts';
import { TestStore, utf8 } from '../test-store.ts';
import { EVENT_RING_CAPACITY, EventsTable, eventIdAt, isUuid, MAX_EVENT_PAYLOAD_BYTES, uuidToUint64, type UserEvent } from './events.ts';

const PROPOSED = '8b1c2a6e-1f0d-4c4e-9a55-3e2f6d7c8b9a';

function fireCommand(name: string, payload = '', fields: Partial<EventFireCommand> = {}): EventFireCommand {
  return { type: 'eventFire', id: PROPOSED, name, payload: encodeBase64(utf8(payload)), nodeFilter: '', serviceFilter: '', tagFilter: '', ...fields };
}

function fire(s: TestStore, name: string, payload = '', fields: Partial<EventFireCommand> = {}) {
  return s.fsm.apply(s.nextIndex, encodeCommand(fireCommand(name, payload, fields)));
}

t.test('IDs: the proposed UUID\'s first half, and Consul\'s uuidToUint64 gives the Raft index', async (t) => {
  // Consul's agent/event_endpoint.go: first 16 hex digits XOR last 16 hex digits.
  t.equal(uuidToUint64('00000000-0000-0000-0000-000000000005'), 5n);
  t.equal(uuidToUint64('ffffffff-ffff-ffff-ffff-ffffffffffff'), 0n);
  for (const index of [1, 2, 255, 65_536, 2 ** 32 + 7, Number.MAX_SAFE_INTEGER]) {
    const id = eventIdAt(PROPOSED, index);
    t.ok(isUuid(id), `${id} is UUID-shaped`);
    t.equal(id.slice(0, 18), PROPOSED.slice(0, 18), 'first 64 bits kept');
    t.equal(uuidToUint64(id), BigInt(index));
  }
});

t.test('a fire records the event and answers it as the API shows it', async (t) => {
  const s = new TestStore();
  s.noop();
  const index = s.nextIndex;
  const result = fire(s, 'deploy', 'v1.2.3', { nodeFilter: 'web-.*', serviceFilter: 'api', tagFilter: 'canary' });
  t.same(result, {
    kind: 'event',
    event: {
      ID: eventIdAt(PROPOSED, index),
      Name: 'deploy',
      Payload: encodeBase64(utf8('v1.2.3')),
      NodeFilter: 'web-.*',
      ServiceFilter: 'api',
      TagFilter: 'canary',
      Version: 1,
      LTime: 1,
    },
  });
  t.match(fire(s, 'empty'), { event: { Payload: null, LTime: 2 } }, 'no payload is null, as in Consul');
  t.equal(s.fsm.events.index(), index + 1);
  t.same(s.fsm.events.list().map((e) => e.Name), ['deploy', 'empty']);
  t.same(s.fsm.events.list('deploy').map((e) => e.Index), [index]);
  t.same(s.fsm.events.list('nothing'), []);
});

t.test('the ring keeps the last 256 events, oldest first; LTime keeps counting', async (t) => {
  const table = new EventsTable();
  for (let i = 1; i <= EVENT_RING_CAPACITY + 10; i++) {
    table.fire(i, { proposedId: PROPOSED, name: `e${i}`, payload: new Uint8Array(0), nodeFilter: '', serviceFilter: '', tagFilter: '' });
  }
  const events = table.list();
  t.equal(events.length, EVENT_RING_CAPACITY);
  t.equal(events[0]!.Name, 'e11');
  t.equal(events[events.length - 1]!.Name, `e${EVENT_RING_CAPACITY + 10}`);
  t.equal(events[events.length - 1]!.LTime, EVENT_RING_CAPACITY + 10);
  t.ok(events.every((e, i) => i === 0 || e.Index > events[i - 1]!.Index));
});

t.test('event watchers wake on fires; KV watchers do not', async (t) => {
  const s = new TestStore();
  const woke: string[] = [];
  s.fsm.watches.watchTable('events', (i) => woke.push(`events@${i}`));
  s.fsm.watches.watchPrefix('', (i) => woke.push(`kv@${i}`));
  const index = s.nextIndex;
  fire(s, 'x');
  t.same(woke, [`events@${index}`]);
});

t.test('invalid fires are refused and change nothing', async (t) => {
  const s = new TestStore();
  const bad: [string, unknown][] = [
    ['an empty name', fireCommand('')],
    ['an ID that is not a UUID', { ...fireCommand('x'), id: 'not-a-uuid' }],
    ['a payload over the limit', { ...fireCommand('x'), payload: encodeBase64(new Uint8Array(MAX_EVENT_PAYLOAD_BYTES + 1)) }],
    ['a filter that is not a string', { ...fireCommand('x'), nodeFilter: 5 }],
    ['a missing field', { type: 'eventFire', id: PROPOSED, name: 'x', payload: '' }],
  ];
  for (const [name, command] of bad) {
    t.match(s.fsm.apply(s.nextIndex, utf8(JSON.stringify(command))), { ok: false, code: 'invalidCommand' }, name);
  }
  t.equal(s.fsm.events.size, 0);
  t.equal(s.fsm.events.index(), 0);
});

t.test('snapshot section', async (t) => {
  t.test('events survive snapshot and restore, and the next fire continues LTime', async (t) => {
    const s = new TestStore();
    s.put('k', 'v');
    fire(s, 'one', 'payload \u{1F600}', { nodeFilter: 'n', serviceFilter: 's', tagFilter: 't' });
    fire(s, 'two', '');
    const bytes = s.fsm.snapshot();
    const restored = new KonsulFsm();
    restored.restore(bytes);
    t.same(restored.events.dump(), s.fsm.events.dump());
    t.same(restored.snapshot(), bytes, 'identical bytes again');
    const next = restored.apply(s.nextIndex, encodeCommand(fireCommand('three')));
    t.match(next, { event: { LTime: 3 } });
  });

  t.test('a store that never fired an event writes no events section (earlier snapshots keep their bytes)', async (t) => {
    const s = new TestStore();
    s.put('k', 'v');
    const state = decodeSnapshot(s.fsm.snapshot());
    t.equal(state.events, undefined);
    const restored = new KonsulFsm();
    restored.restore(s.fsm.snapshot());
    t.equal(restored.events.size, 0);
  });

  const event = (i: number, fields: Partial<UserEvent> = {}): UserEvent => ({
    ID: eventIdAt(PROPOSED, i),
    Name: `e${i}`,
    Payload: new Uint8Array([i]),
    NodeFilter: '',
    ServiceFilter: '',
    TagFilter: '',
    Version: 1,
    LTime: i,
    Index: i,
    ...fields,
  });
  const withEvents = (events: UserEvent[], lastLTime = 100): FsmState => ({
    appliedIndex: 100,
    kv: { index: 0, entries: [], tombstones: [] },
    events: { index: 100, lastLTime, events },
  });

  t.test('round trip of every field', async (t) => {
    const state = withEvents([event(1, { Name: 'caf\u00e9', NodeFilter: '^web', ServiceFilter: 'api', TagFilter: 'v[0-9]+', Payload: new Uint8Array(0) }), event(2)]);
    t.same(decodeSnapshot(encodeSnapshot(state)), state);
  });

  const refused: [string, FsmState, RegExp][] = [
    ['events out of order', withEvents([event(2), event(1)]), /out of order/],
    ['an LTime beyond the last', withEvents([event(1)], 0), /LTime/],
    ['an ID that is not a UUID', withEvents([event(1, { ID: 'nope' })]), /UUID/],
    ['more than 256 events', withEvents(Array.from({ length: EVENT_RING_CAPACITY + 1 }, (_, i) => event(i + 1)), 1000), /more than 256/],
  ];
  for (const [name, state, message] of refused) {
    t.test(`refused: ${name}`, async (t) => {
      t.throws(() => decodeSnapshot(encodeSnapshot(state)), SnapshotFormatError);
      t.throws(() => decodeSnapshot(encodeSnapshot(state)), message);
    });
  }
});
