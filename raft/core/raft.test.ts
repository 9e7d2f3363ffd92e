// The Raft core's behaviour, one rule per test, named after what the rule guarantees.
import t from 'tap';
import { MemoryStorage } from '../storage/memory-storage.ts';
import { NotLeaderError, RaftError } from './errors.ts';
import { Prng } from './prng.ts';
import { RawNode } from './raw-node.ts';
import { cmd, storageWithLog, TestCluster } from './test-cluster.ts';
import type { Message } from './types.ts';

const ABC = ['a', 'b', 'c'];

t.test('elections', async (t) => {
  t.test('a follower that hears no leader for an election timeout pre-votes, then wins a real election', async (t) => {
    const c = new TestCluster(ABC);
    // Only `a` ticks, so it is the one whose timeout fires.
    for (let i = 0; i < 20 && c.raft('a').role !== 'leader'; i++) c.tick(1, ['a']);
    t.equal(c.raft('a').role, 'leader');
    t.equal(c.raft('a').term, 2, 'founders start at term 1; the pre-vote round did not bump it, the real election did, once');
    t.ok(c.countSent('preVote') >= 2, 'pre-votes went out first');
    t.ok(c.countSent('vote') >= 2, 'then real votes');
    t.equal(c.raft('b').lead, 'a');
    t.equal(c.raft('c').lead, 'a');
  });

  t.test('a node cut off from the others keeps its term: pre-vote never reaches a quorum', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.isolate('c');
    c.tick(100, ['c']);
    t.equal(c.raft('c').term, 2, 'repeated failed pre-votes did not inflate the term');
    t.equal(c.raft('c').role, 'preCandidate');
  });

  t.test('a partitioned node that returns does not disrupt the healthy leader', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    const heal = c.isolate('c');
    c.tick(50);
    heal();
    c.tick(30);
    t.same(c.leaders(), ['a']);
    t.equal(c.raft('a').term, 2);
    t.equal(c.raft('c').lead, 'a', 'the returning node follows the existing leader');
  });

  t.test('without pre-vote, the rejoining node would bump the term (the lease alone keeps the leader)', async (t) => {
    const c = new TestCluster(ABC, { overrides: { preVote: false } });
    c.elect('a');
    const heal = c.isolate('c');
    c.tick(50);
    t.ok(c.raft('c').term > 2, 'an isolated candidate inflates its term');
    heal();
    c.tick(30);
    t.equal(c.leaders().length, 1, 'one leader again after healing');
  });

  t.test('a vote is refused to a candidate whose log is less up to date', async (t) => {
    const storages = {
      a: storageWithLog(ABC, [1], 1),
      b: storageWithLog(ABC, [1, 1, 1], 1),
      c: storageWithLog(ABC, [1, 1, 1], 1),
    };
    const c = new TestCluster(ABC, { storages, overrides: { preVote: false } });
    c.elect('a');
    t.not(c.raft('a').role, 'leader');
    t.equal(c.countSent('voteResp', (m) => m.type === 'voteResp' && !m.reject), 0, 'nobody granted the vote');
  });

  t.test('a node grants at most one vote per term', async (t) => {
    const node = new RawNode({ id: 'a', storage: new MemoryStorage({ voters: ABC, learners: [] }), random: new Prng(1), preVote: false, checkQuorum: false });
    // Both candidates' logs (the 3 bootstrap entries of term 1) are as up to date as a's.
    node.step({ type: 'vote', from: 'b', to: 'a', term: 2, index: 3, logTerm: 1, transfer: false });
    node.step({ type: 'vote', from: 'c', to: 'a', term: 2, index: 3, logTerm: 1, transfer: false });
    const rd = node.ready()!;
    const answers = rd.messages.filter((m) => m.type === 'voteResp');
    t.same(answers.map((m) => [m.to, m.type === 'voteResp' && m.reject]), [['b', false], ['c', true]]);
    t.same(rd.hardState, { term: 2, vote: 'b', commit: 3 }, 'the vote is part of the hard state to persist');
  });

  t.test('a leader that cannot hear from a quorum steps down after an election timeout (check-quorum)', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.drop((m) => m.to === 'a');
    c.tick(25, ['a']);
    t.equal(c.raft('a').role, 'follower');
    t.equal(c.get('a').node.status().lead, '');
  });

  t.test('a follower in a leader lease ignores a higher-term vote request', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.raft('b').step({ type: 'vote', from: 'c', to: 'b', term: 5, index: 99, logTerm: 5, transfer: false });
    t.equal(c.raft('b').term, 2, 'term unchanged');
    t.equal(c.raft('b').lead, 'a');
  });

  t.test('a learner never campaigns', async (t) => {
    const c = new TestCluster(['a', 'b'], { learners: ['l'] });
    c.tick(100, ['l']);
    t.equal(c.raft('l').role, 'follower');
    t.equal(c.raft('l').term, 1, 'still the founders\' term');
    t.equal(c.sent.length, 0);
  });
});

t.test('log replication', async (t) => {
  t.test('an entry commits once a majority stores it, and followers learn the commit', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    const stopC = c.isolate('c');
    const { lastIndex } = c.propose('a', 'x=1');
    t.equal(c.raft('a').log.committed, lastIndex, 'a and b are a majority');
    t.same(c.get('a').applied, ['x=1']);
    t.same(c.get('b').applied, ['x=1'], 'the leader sends the new commit index at once');
    stopC();
    c.tick(2);
    t.same(c.get('c').applied, ['x=1'], 'the isolated follower catches up after healing');
  });

  // Logs after the 3 bootstrap entries: a and b hold index 4 (term 2) and 5 (term 3); c only index 4.
  const figure8 = () => ({
    a: storageWithLog(ABC, [2, 3], 4),
    b: storageWithLog(ABC, [2, 3], 4),
    c: storageWithLog(ABC, [2], 4),
  });
  // Lets b see the leader's appends without their term-5 entries, so b acknowledges index 5 only.
  const stripCurrentTerm = (m: Message): Message | null =>
    m.type === 'app' ? (m.to === 'b' ? { ...m, entries: m.entries.filter((e) => e.term !== 5) } : null) : m;

  t.test('a leader does not commit an entry of an earlier term by counting replicas (Figure 8)', async (t) => {
    const c = new TestCluster(ABC, { storages: figure8() });
    c.intercept(stripCurrentTerm);
    c.elect('a');
    t.equal(c.raft('a').role, 'leader');
    t.equal(c.raft('a').term, 5);
    const b = c.raft('a').progress.get('b')!;
    t.equal(b.match, 5, 'the leader knows b stores index 5 (term 3): with a, a majority');
    t.equal(c.raft('a').log.committed, 3, 'but index 5 is of an earlier term and stays uncommitted');
    c.healAll();
    c.tick(2);
    t.equal(c.raft('a').log.committed, 6, 'it commits together with the first entry of term 5');
  });

  t.test('the simulation mutation that counts earlier-term replicas does commit it (the switch works)', async (t) => {
    const c = new TestCluster(ABC, { storages: figure8(), overrides: { unsafeMutations: { commitPreviousTermByCounting: true } } });
    c.intercept(stripCurrentTerm);
    c.elect('a');
    t.equal(c.raft('a').log.committed, 5);
  });

  t.test('a conflicting follower log is repaired by skipping whole terms, not one entry per round trip', async (t) => {
    // After index 4, c has 30 entries of a stale term 2 where a and b have two entries of term 3.
    const storages = {
      a: storageWithLog(ABC, [1, 3, 3], 3),
      b: storageWithLog(ABC, [1, 3, 3], 3),
      c: storageWithLog(ABC, [1, ...Array.from({ length: 30 }, () => 2)], 3),
    };
    const c = new TestCluster(ABC, { storages });
    c.elect('a');
    c.propose('a', 'y');
    const rejections = c.countSent('appResp', (m) => m.type === 'appResp' && m.from === 'c' && m.reject);
    t.ok(rejections <= 2, `c's log was repaired with ${rejections} rejections`);
    t.equal(c.raft('c').log.lastIndex(), c.raft('a').log.lastIndex());
    t.equal(c.raft('c').log.term(5), 3, 'the stale term-2 suffix was replaced');
  });

  t.test('flow control bounds the appends in flight to a follower that does not answer', async (t) => {
    const c = new TestCluster(ABC, { overrides: { maxInflightMsgs: 4 } });
    c.elect('a');
    c.propose('a', 'warm-up'); // b and c reach replicate state
    c.drop((m) => m.from === 'c');
    const carriesEntries = (m: Message) => m.type === 'app' && m.to === 'c' && m.entries.length > 0;
    const before = c.countSent('app', carriesEntries);
    for (let i = 0; i < 20; i++) c.propose('a', `v${i}`);
    const sent = c.countSent('app', carriesEntries) - before;
    t.equal(sent, 4, 'exactly maxInflightMsgs appends with entries went to the silent follower');
  });

  t.test('a follower in probe state gets one append at a time until it answers', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.propose('a', 'warm-up');
    c.get('a').node.reportUnreachable('c'); // back to probing
    c.drop((m) => m.from === 'c');
    const before = c.countSent('app', (m) => m.to === 'c');
    for (let i = 0; i < 5; i++) c.propose('a', `v${i}`);
    t.equal(c.countSent('app', (m) => m.to === 'c') - before, 1);
  });

  t.test('a proposal to a follower fails at once with the leader as a hint', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    t.throws(() => c.get('b').node.propose([cmd('x')]), new NotLeaderError('a'));
    const lonely = new TestCluster(ABC);
    t.throws(() => lonely.get('b').node.propose([cmd('x')]), { name: 'NotLeaderError', leader: '' });
  });

  t.test('a leader that steps down reports its uncommitted proposals as abandoned', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.isolate('a');
    const { firstIndex, lastIndex } = c.propose('a', 'p1', 'p2');
    c.tick(25, ['a']); // check-quorum makes it step down
    t.equal(c.raft('a').role, 'follower');
    t.same(c.get('a').abandoned, [{ term: 2, fromIndex: firstIndex, toIndex: lastIndex }]);
  });

  t.test('a leader batches several proposals into one append per follower', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    const before = c.countSent('app', (m) => m.to === 'b');
    c.get('a').node.propose([cmd('1'), cmd('2'), cmd('3')]);
    c.stabilize();
    const apps = c.sent.filter((m) => m.type === 'app' && m.to === 'b').slice(before);
    t.equal(apps[0]?.type === 'app' ? apps[0].entries.length : 0, 3);
  });
});

t.test('snapshots', async (t) => {
  t.test('a follower behind the compacted log receives the snapshot and then the rest', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    const heal = c.isolate('c');
    for (let i = 0; i < 10; i++) c.propose('a', `k${i}`);
    c.snapshotAndCompact('a');
    c.propose('a', 'after-snapshot');
    heal();
    c.tick(3);
    t.equal(c.countSent('snap', (m) => m.to === 'c'), 1);
    t.same(c.get('c').applied, c.get('a').applied);
    t.equal(c.raft('c').log.committed, c.raft('a').log.committed);
  });

  t.test('a follower does not throw away its log for a snapshot it already covers', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    for (let i = 0; i < 3; i++) c.propose('a', `k${i}`);
    const snapshot = c.get('a').storage.createSnapshot(2, c.get('a').node.confState(), cmd('[]'));
    c.raft('b').step({ type: 'snap', from: 'a', to: 'b', term: 1, snapshot });
    const rd = c.get('b').node.ready();
    t.equal(rd?.snapshot ?? null, null);
  });
});

t.test('membership changes', async (t) => {
  t.test('a learner receives the log but does not count towards the quorum', async (t) => {
    const c = new TestCluster(['a', 'b']);
    c.elect('a');
    c.add('l');
    c.get('a').node.proposeConfChange({ type: 'addLearner', node: 'l' });
    c.stabilize();
    c.propose('a', 'x');
    t.same(c.get('l').applied, ['x']);
    t.same(c.raft('a').confState(), { voters: ['a', 'b'], learners: ['l'] });
    c.isolate('b');
    c.propose('a', 'needs-b');
    t.notOk(c.get('a').applied.includes('needs-b'), 'a and the learner are not a quorum');
  });

  t.test('a promoted learner counts towards the quorum', async (t) => {
    const c = new TestCluster(['a', 'b'], { learners: ['l'] });
    c.elect('a');
    c.get('a').node.proposeConfChange({ type: 'addVoter', node: 'l' });
    c.stabilize();
    t.same(c.raft('a').confState(), { voters: ['a', 'b', 'l'], learners: [] });
    c.isolate('b');
    c.propose('a', 'with-l');
    t.ok(c.get('a').applied.includes('with-l'), 'a and l are a majority of three');
  });

  t.test('only one membership change may be in flight', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.isolate('b');
    c.isolate('c');
    c.get('a').node.proposeConfChange({ type: 'addLearner', node: 'd' });
    t.throws(() => c.get('a').node.proposeConfChange({ type: 'addLearner', node: 'e' }), { code: 'confChangeInProgress' });
  });

  t.test('a new leader proposes no membership change until an entry of its term has committed', async (t) => {
    const c = new TestCluster(ABC);
    const heal = c.drop((m) => m.type === 'appResp');
    c.elect('a');
    t.equal(c.raft('a').role, 'leader');
    t.throws(() => c.get('a').node.proposeConfChange({ type: 'addLearner', node: 'd' }), { code: 'confChangeInProgress' });
    heal();
    c.tick(2);
    t.doesNotThrow(() => c.get('a').node.proposeConfChange({ type: 'addLearner', node: 'd' }));
  });

  t.test('a change takes effect when it reaches the log, and reverts if that entry is overwritten', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.propose('a', 'x');
    c.isolate('a');
    c.get('a').node.proposeConfChange({ type: 'addLearner', node: 'd' });
    c.stabilize();
    t.same(c.raft('a').confState().learners, ['d'], 'in force on the leader before it commits');
    c.healAll();
    const heal = c.isolate('a');
    c.tick(30, ['b', 'c']);
    heal();
    c.tick(3);
    t.not(c.raft('a').role, 'leader');
    t.same(c.raft('a').confState().learners, [], 'the uncommitted change was overwritten and reverted');
  });

  t.test('invalid changes are refused with a reason', async (t) => {
    const c = new TestCluster(['a']);
    c.elect('a');
    t.throws(() => c.get('a').node.proposeConfChange({ type: 'addVoter', node: 'a' }), { code: 'invalidConfChange' });
    t.throws(() => c.get('a').node.proposeConfChange({ type: 'removeNode', node: 'zz' }), { code: 'invalidConfChange' });
    t.throws(() => c.get('a').node.proposeConfChange({ type: 'removeNode', node: 'a' }), { code: 'invalidConfChange' });
  });

  t.test('a leader that removes itself steps down and the rest elect a successor', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.get('a').node.proposeConfChange({ type: 'removeNode', node: 'a' });
    c.stabilize();
    t.equal(c.raft('a').role, 'follower');
    t.same(c.raft('b').confState().voters, ['b', 'c']);
    c.tick(30, ['b', 'c']);
    const leaders = c.leaders();
    t.equal(leaders.length, 1);
    t.not(leaders[0], 'a');
    c.propose(leaders[0]!, 'after');
    t.ok(c.get('b').applied.includes('after'));
  });

  t.test('a new voter starting from an empty log catches up and then votes', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.propose('a', 'before');
    c.add('d');
    c.get('a').node.proposeConfChange({ type: 'addVoter', node: 'd' });
    c.stabilize();
    c.tick(2);
    t.same(c.get('d').applied, ['before']);
    t.same(c.raft('d').confState().voters, ['a', 'b', 'c', 'd']);
  });
});

t.test('linearizable reads (ReadIndex)', async (t) => {
  t.test('the leader answers with its commit index after a quorum confirms it, writing nothing to the log', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.propose('a', 'x');
    const lastIndex = c.raft('a').log.lastIndex();
    c.get('a').node.readIndex('r1');
    c.stabilize();
    t.same(c.get('a').readStates, [{ context: 'r1', index: c.raft('a').log.committed }]);
    t.equal(c.raft('a').log.lastIndex(), lastIndex, 'no log entry');
    t.ok(c.countSent('heartbeat', (m) => m.type === 'heartbeat' && m.context === 'r1') >= 2);
  });

  t.test('a follower forwards the request and gets the leader\'s read index', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.propose('a', 'x');
    c.get('b').node.readIndex('rb');
    c.stabilize();
    t.same(c.get('b').readStates, [{ context: 'rb', index: c.raft('a').log.committed }]);
  });

  t.test('a node with no leader fails the read at once', async (t) => {
    const c = new TestCluster(ABC);
    c.get('b').node.readIndex('r');
    c.stabilize();
    t.same(c.get('b').failedReads, [{ context: 'r', reason: 'noLeader' }]);
  });

  t.test('an isolated leader never answers a read; the read fails instead of hanging', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.isolate('a');
    c.get('a').node.readIndex('r');
    c.tick(25, ['a']);
    t.same(c.get('a').readStates, []);
    t.equal(c.get('a').failedReads.length, 1);
    t.equal(c.get('a').failedReads[0]!.context, 'r');
  });

  t.test('a new leader holds reads until an entry of its term commits', async (t) => {
    const c = new TestCluster(ABC);
    c.get('a').node.campaign();
    c.drop((m) => m.type === 'appResp');
    c.stabilize();
    c.get('a').node.readIndex('early');
    c.stabilize();
    t.same(c.get('a').readStates, [], 'not answered while the term-start entry is uncommitted');
    c.healAll();
    c.tick(2);
    t.equal(c.get('a').readStates[0]?.context, 'early');
  });
});

t.test('leadership transfer', async (t) => {
  t.test('an up-to-date target takes over at once', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.propose('a', 'x');
    c.get('a').node.transferLeader('b');
    c.stabilize();
    t.same(c.leaders(), ['b']);
    t.equal(c.raft('b').term, 3);
  });

  t.test('a lagging target is caught up before it is told to campaign', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    const heal = c.isolate('c');
    c.propose('a', 'x', 'y');
    heal();
    c.get('a').node.transferLeader('c');
    c.stabilize();
    t.same(c.leaders(), ['c']);
    t.same(c.get('c').applied, ['x', 'y']);
  });

  t.test('proposals are refused while a transfer is in progress', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.isolate('b');
    c.get('a').node.transferLeader('b');
    t.throws(() => c.get('a').node.propose([cmd('x')]), new RaftError('transferInProgress', 'leadership is being transferred to b'));
  });

  t.test('a transfer that cannot complete is abandoned after an election timeout', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.isolate('b');
    c.get('a').node.transferLeader('b');
    c.tick(12, ['a']);
    t.equal(c.raft('a').leadTransferee, '');
    t.doesNotThrow(() => c.get('a').node.propose([cmd('x')]));
  });
});

t.test('persistence and restart', async (t) => {
  t.test('a restarted node recovers term, vote, log and commit from storage', async (t) => {
    const c = new TestCluster(ABC);
    c.elect('a');
    c.propose('a', 'x', 'y');
    const storage = c.get('b').storage;
    const restarted = new RawNode({ id: 'b', storage, random: new Prng(9) });
    const st = restarted.status();
    t.equal(st.term, 2);
    t.equal(st.vote, 'a');
    t.equal(st.lastIndex, c.raft('a').log.lastIndex());
    const rd = restarted.ready()!;
    t.ok(rd.committedEntries.length >= 1, 'committed entries are handed out again for the fresh state machine');
  });

  t.test('entries reach the Ready before the messages that acknowledge them can be sent', async (t) => {
    const node = new RawNode({ id: 'b', storage: new MemoryStorage({ voters: ABC, learners: [] }), random: new Prng(1) });
    node.step({ type: 'app', from: 'a', to: 'b', term: 2, index: 3, logTerm: 1, commit: 3, entries: [{ type: 'normal', index: 4, term: 2, data: cmd('x') }] });
    const rd = node.ready()!;
    t.equal(rd.entries.length, 1, 'the entry is to be persisted');
    t.same(rd.hardState, { term: 2, vote: '', commit: 3 }, 'with the term of the leader that sent it');
    const ack = rd.messages.find((m) => m.type === 'appResp');
    t.ok(ack, 'the acknowledgement travels in the same Ready, to be sent after persisting');
    t.equal(node.ready(), null, 'only one Ready is outstanding');
    node.advance(rd);
    t.equal(node.raft.log.unstable.entries.length, 0, 'advance() marks the entries stable');
  });
});

t.test('bootstrap of an empty log (bootstrap-expect)', async (t) => {
  t.test('one founder bootstraps, elects itself and brings empty founders up to date', async (t) => {
    const c = new TestCluster([]);
    for (const id of ['a', 'b', 'c']) c.add(id);
    const founders = { voters: ['a', 'b', 'c'], learners: [] };
    t.equal(c.get('a').node.bootstrap(founders), true);
    t.same(c.raft('a').confState().voters, ['a', 'b', 'c'], 'the configuration is in force at once');
    t.same(c.raft('b').confState().voters, [], 'the others know nothing yet');
    c.elect('a');
    t.same(c.leaders(), ['a']);
    c.propose('a', 'x');
    for (const id of ['b', 'c']) {
      t.same(c.raft(id).confState().voters, ['a', 'b', 'c'], `${id} learned the founders from the leader`);
      t.same(c.get(id).applied, ['x']);
    }
    t.equal(c.get('b').node.bootstrap(founders), false, 'a non-empty log is never bootstrapped again');
  });

  t.test('founders that all bootstrap hold identical logs', async (t) => {
    const c = new TestCluster([]);
    for (const id of ['a', 'b', 'c']) c.add(id);
    for (const id of ['c', 'a', 'b']) t.equal(c.get(id).node.bootstrap({ voters: ['c', 'b', 'a'], learners: [] }), true);
    c.stabilize();
    c.elect('b');
    c.propose('b', 'y');
    for (const id of ['a', 'b', 'c']) {
      t.same(c.get(id).applied, ['y']);
      t.equal(c.raft(id).log.committed, 5, `${id}: 3 conf entries, the leader's empty entry, y`);
    }
  });

  t.test('a bootstrap is refused after a snapshot or with no founders', async (t) => {
    const c = new TestCluster([]);
    c.add('a');
    t.equal(c.get('a').node.bootstrap({ voters: [], learners: [] }), false);
    const founded = new TestCluster(['a']);
    founded.elect('a');
    t.equal(founded.get('a').node.bootstrap({ voters: ['a'], learners: [] }), false);
  });
});
