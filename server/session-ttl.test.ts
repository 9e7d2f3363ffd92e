// The leader's session TTL timer, driven with explicit times against a real FSM behind a fake Raft
// (proposals apply in order, or wait until released, to stage races).
import t from 'tap';
import { encodeCommand, kvSetCommand, type Command } from '../fsm/commands.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { SessionTtlTimer, type SessionTtlRaft } from './session-ttl.ts';

const ID1 = '11111111-1111-4111-8111-111111111111';
const ID2 = '22222222-2222-4222-8222-222222222222';

class FakeRaft implements SessionTtlRaft {
  leader = true;
  term = 1;
  /** When set, proposals wait here until `flush`. */
  hold = false;
  private readonly held: { bytes: Uint8Array; resolve: (r: unknown) => void }[] = [];
  proposals = 0;

  constructor(readonly fsm: KonsulFsm) {}

  isReadyLeader(): boolean {
    return this.leader;
  }

  status(): { term: number } {
    return { term: this.term };
  }

  propose(bytes: Uint8Array): Promise<unknown> {
    this.proposals++;
    if (!this.hold) return Promise.resolve(this.fsm.apply(this.fsm.appliedIndex + 1, bytes));
    return new Promise((resolve) => this.held.push({ bytes, resolve }));
  }

  flush(): void {
    for (const { bytes, resolve } of this.held.splice(0)) resolve(this.fsm.apply(this.fsm.appliedIndex + 1, bytes));
  }

  apply(command: Command): unknown {
    return this.fsm.apply(this.fsm.appliedIndex + 1, encodeCommand(command));
  }
}

function setup(): { fsm: KonsulFsm; raft: FakeRaft; timer: SessionTtlTimer } {
  const fsm = new KonsulFsm();
  const raft = new FakeRaft(fsm);
  const timer = new SessionTtlTimer({ raft, sessions: fsm.sessions, checkEveryMs: 1000 });
  // Sessions need their node in the catalog.
  raft.apply({ type: 'catalogRegister', node: { Node: 'n1', ID: '', Address: '10.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} }, skipNodeUpdate: false, checks: [] });
  return { fsm, raft, timer };
}

function create(raft: FakeRaft, id: string, ttl: string): void {
  raft.apply({ type: 'sessionCreate', id, name: '', node: 'n1', lockDelayNs: 1_000_000_000, behavior: 'release', ttl, nodeChecks: [], serviceChecks: null, checks: null });
}

t.test('a session not renewed for TTL x 2 is destroyed, its locks released; renewals push it back', async (t) => {
  const { fsm, raft, timer } = setup();
  create(raft, ID1, '10s');
  create(raft, ID2, '');
  raft.apply(kvSetCommand({ key: 'lock', value: new Uint8Array(), acquire: ID1, nowMs: 0 }));
  await timer.check(0);
  t.equal(timer.trackedCount, 1, 'only the session with a TTL is timed');
  await timer.check(19_999);
  t.ok(fsm.sessions.get(ID1), 'alive before TTL x 2');
  raft.apply({ type: 'sessionRenew', id: ID1 });
  await timer.check(20_000);
  t.ok(fsm.sessions.get(ID1), 'the renewal seen at 20 s restarts the clock');
  await timer.check(39_999);
  t.ok(fsm.sessions.get(ID1));
  await timer.check(40_000);
  t.equal(fsm.sessions.get(ID1), undefined, 'expired at 20 s + 2 x 10 s');
  t.equal(fsm.kv.get('lock')!.Session, undefined, 'its lock is released');
  t.equal(fsm.sessions.lockDelayUntil('lock'), 41_000, "lock-delay runs from the leader's expiry time");
  t.ok(fsm.sessions.get(ID2), 'a session without TTL never expires');
  await timer.check(41_000);
  t.equal(timer.trackedCount, 0, 'a destroyed session is no longer timed');
});

t.test('followers time nothing; a new leader (or term) gives every session a full TTL x 2', async (t) => {
  const { fsm, raft, timer } = setup();
  create(raft, ID1, '10s');
  raft.leader = false;
  await timer.check(0);
  await timer.check(100_000);
  t.equal(raft.proposals, 0, 'a follower proposes nothing');
  t.ok(fsm.sessions.get(ID1));
  raft.leader = true;
  await timer.check(100_000);
  await timer.check(119_999);
  t.ok(fsm.sessions.get(ID1), 'full grace from the moment of leadership');
  raft.term = 2;
  await timer.check(120_000);
  await timer.check(139_999);
  t.ok(fsm.sessions.get(ID1), 'a new term starts afresh too');
  await timer.check(140_000);
  t.equal(fsm.sessions.get(ID1), undefined);
});

t.test('a renewal that commits before the expiry wins', async (t) => {
  const { fsm, raft, timer } = setup();
  create(raft, ID1, '10s');
  await timer.check(0);
  raft.hold = true;
  const expiring = timer.check(20_000);
  t.equal(raft.proposals, 1, 'the expiry is proposed');
  await timer.check(20_500);
  t.equal(raft.proposals, 1, 'and not proposed twice while in flight');
  raft.hold = false;
  raft.apply({ type: 'sessionRenew', id: ID1 });
  raft.flush();
  await expiring;
  t.ok(fsm.sessions.get(ID1), 'the expiry named an older renewal: void');
  await timer.check(21_000);
  await timer.check(40_999);
  t.ok(fsm.sessions.get(ID1));
  await timer.check(41_000);
  t.equal(fsm.sessions.get(ID1), undefined);
});

t.test('a failed proposal is retried at the next round', async (t) => {
  const { fsm, raft, timer } = setup();
  create(raft, ID1, '10s');
  await timer.check(0);
  const errors: unknown[] = [];
  const failing = new SessionTtlTimer({
    raft: { isReadyLeader: () => true, status: () => ({ term: 1 }), propose: () => Promise.reject(new Error('leadership lost')) },
    sessions: fsm.sessions,
    checkEveryMs: 1000,
    onError: (err) => errors.push(err),
  });
  await failing.check(0);
  await failing.check(20_000);
  t.equal(errors.length, 1);
  t.ok(fsm.sessions.get(ID1));
  await timer.check(20_000);
  t.equal(fsm.sessions.get(ID1), undefined);
});
