// Recoverable deletes: what the FSM keeps when keys under recovery rules are deleted or overwritten
// (every path: delete, delete-tree, txn, CAS, session invalidation), the limits, reaping, purging,
// rule changes, determinism, and the snapshot round trip.
import t from 'tap';
import { encodeCommand, validateCommand, type Command } from '../commands.ts';
import { KonsulFsm, type FsmResult } from '../konsul-fsm.ts';
import { decodeSnapshot, encodeSnapshot, SnapshotDecoder, SnapshotFormatError } from '../snapshot.ts';
import { flagsOf, modifyIndexOf, valueOf } from './kv-record.ts';
import { kvRecoveryForRestoreAt, versionBytes, type RetiredVersion } from './kv-recovery.ts';
import type { KvRecoveryRule } from './kv-recovery-commands.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const T0 = 1_800_000_000_000;
const HOUR = 3_600_000;
const SESSION = '11111111-1111-4111-8111-111111111111';

class Store {
  readonly fsm = new KonsulFsm();
  apply(command: Command): FsmResult {
    return this.fsm.apply(this.fsm.appliedIndex + 1, encodeCommand(command));
  }
  rules(rules: KvRecoveryRule[], maxBytes = 1024 * 1024): FsmResult {
    return this.apply({ type: 'kvRecoveryRules', rules, maxBytes });
  }
  put(key: string, value: string, extra: { flags?: string; cas?: number; nowMs?: number; acquire?: string } = {}): FsmResult {
    const { flags, ...rest } = extra;
    return this.apply({ type: 'kvSet', key, value: Buffer.from(value).toString('base64'), flags: flags ?? '0', ...rest });
  }
  del(key: string, nowMs?: number): FsmResult {
    return this.apply({ type: 'kvDelete', key, ...(nowMs !== undefined ? { nowMs } : {}) });
  }
  /** A key's versions as [value, why] pairs, newest first. */
  versions(key: string): [string, string][] {
    return this.fsm.kvRecovery.versionsOf(key).map((v) => [dec.decode(valueOf(v.record)), v.why]);
  }
}

const rule = (prefix: string, retentionMs = 720 * HOUR, maxVersions = 10): KvRecoveryRule => ({ prefix, retentionMs, maxVersions });

t.test('without rules nothing is kept', async (t) => {
  const s = new Store();
  s.put('config/a', 'v1');
  s.put('config/a', 'v2');
  s.del('config/a');
  t.equal(s.fsm.kvRecovery.versionCount, 0);
  t.equal(s.fsm.kvRecovery.index(), 0);
  t.notOk(decodeSnapshot(s.fsm.snapshot()).kvRecovery, 'no snapshot section for an unused table');
});

t.test('deletes and overwrites under a rule are kept, with flags, indexes, time and reason', async (t) => {
  const s = new Store();
  s.rules([rule('config/')]);
  s.put('config/a', 'v1', { flags: '18446744073709551615', nowMs: T0 });
  const v1Index = s.fsm.appliedIndex;
  s.put('config/a', 'v2', { nowMs: T0 + 1000 });
  s.put('config/a', 'v2', { nowMs: T0 + 2000 }); // unchanged: retires nothing
  s.del('config/a', T0 + 3000);
  s.put('other/a', 'x');
  s.del('other/a');
  t.same(s.versions('config/a'), [['v2', 'deleted'], ['v1', 'overwritten']]);
  const [newest, oldest] = s.fsm.kvRecovery.versionsOf('config/a') as [RetiredVersion, RetiredVersion];
  t.equal(flagsOf(oldest.record), 18446744073709551615n, 'all 64 bits of Flags');
  t.equal(modifyIndexOf(oldest.record), v1Index);
  t.equal(oldest.retiredAtMs, T0 + 1000, 'retired at the time the overwrite carried');
  t.equal(newest.retiredAtMs, T0 + 3000);
  t.equal(s.fsm.kvRecovery.versionsOf('other/a').length, 0, 'keys outside the rules: nothing kept');
});

t.test('a flags-only change is an overwrite; a lock change alone is not', async (t) => {
  const s = new Store();
  s.rules([rule('c/')]);
  s.apply({ type: 'catalogRegister', node: { Node: 'n1', ID: '', Address: '127.0.0.1', Datacenter: 'dc1', TaggedAddresses: {}, Meta: {} }, skipNodeUpdate: false, checks: [] });
  s.apply({ type: 'sessionCreate', id: SESSION, name: '', node: 'n1', lockDelayNs: 0, behavior: 'delete', ttl: '', nodeChecks: null, serviceChecks: null, checks: null });
  s.put('c/k', 'v', { flags: '1' });
  s.put('c/k', 'v', { flags: '2' });
  s.put('c/k', 'v', { flags: '2', acquire: SESSION, nowMs: T0 });
  t.same(s.versions('c/k'), [['v', 'overwritten']]);
  t.equal(flagsOf(s.fsm.kvRecovery.versionsOf('c/k')[0]!.record), 1n);
  // Behavior=delete: destroying the session deletes the key it holds.
  s.apply({ type: 'sessionDestroy', id: SESSION, nowMs: T0 + 5000 });
  t.equal(s.fsm.kv.get('c/k'), undefined);
  t.same(s.versions('c/k'), [['v', 'deleted'], ['v', 'overwritten']], 'a session-invalidation delete is kept');
  t.equal(s.fsm.kvRecovery.versionsOf('c/k')[0]!.retiredAtMs, T0 + 5000);
});

t.test('tree deletes, CAS writes and transactions', async (t) => {
  const s = new Store();
  s.rules([rule('config/')]);
  for (const k of ['config/a', 'config/b', 'plain/c']) s.put(k, k);
  s.apply({ type: 'kvDeleteTree', prefix: '', nowMs: T0 });
  t.same(s.fsm.kvRecovery.list('').map((v) => [v.key, v.why]), [['config/a', 'deleted'], ['config/b', 'deleted']]);

  s.put('config/cas', 'one');
  const index = s.fsm.kv.get('config/cas')!.ModifyIndex;
  t.equal(s.put('config/cas', 'stale', { cas: index + 100 }), false);
  t.equal(s.put('config/cas', 'two', { cas: index }), true);
  t.same(s.versions('config/cas'), [['one', 'overwritten']], 'a failed CAS keeps nothing, a CAS overwrite its old value');

  // A transaction writing a key twice keeps only what was there before it.
  const b64 = (v: string) => Buffer.from(v).toString('base64');
  s.put('config/t', 'before');
  s.apply({ type: 'txn', ops: [{ verb: 'set', key: 'config/t', value: b64('mid') }, { verb: 'set', key: 'config/t', value: b64('after') }, { verb: 'delete', key: 'config/b2' }] });
  t.same(s.versions('config/t'), [['before', 'overwritten']]);
  // A failed transaction keeps nothing.
  s.apply({ type: 'txn', ops: [{ verb: 'delete', key: 'config/t' }, { verb: 'check-index', key: 'config/t', index: 1 }] });
  t.equal(s.fsm.kv.get('config/t')?.Value.length, 5, 'rolled back');
  t.same(s.versions('config/t'), [['before', 'overwritten']]);
  s.apply({ type: 'txn', ops: [{ verb: 'delete-tree', key: 'config/t' }] });
  t.same(s.versions('config/t'), [['after', 'deleted'], ['before', 'overwritten']]);
});

t.test('the longest matching prefix decides; limits evict the oldest first', async (t) => {
  const s = new Store();
  s.rules([rule('a/', HOUR, 3), rule('a/b/', 2 * HOUR, 1)]);
  for (let i = 0; i < 5; i++) s.put('a/x', `x${i}`);
  for (let i = 0; i < 3; i++) s.put('a/b/y', `y${i}`);
  t.same(s.versions('a/x').map(([v]) => v), ['x3', 'x2', 'x1'], 'at most 3 per key under a/');
  t.same(s.versions('a/b/y').map(([v]) => v), ['y1'], 'at most 1 under a/b/');
  t.equal(s.fsm.kvRecovery.versionsOf('a/b/y')[0]!.retentionMs, 2 * HOUR);

  // Total bytes: room for about two versions of this size; the oldest go first, whatever the key.
  const big = 'v'.repeat(600);
  const s2 = new Store();
  s2.rules([rule('k/')], 1024 + 600);
  s2.put('k/1', big);
  s2.put('k/2', big);
  s2.put('k/1', big + '1');
  s2.put('k/2', big + '2');
  s2.put('k/1', big + '11');
  t.same(s2.fsm.kvRecovery.list('').map((v) => [v.key, dec.decode(valueOf(v.record)).slice(600)]), [['k/1', '1'], ['k/2', '']]);
  t.ok(s2.fsm.kvRecovery.totalBytes <= 1024 + 600);
  t.equal(s2.fsm.kvRecovery.totalBytes, s2.fsm.kvRecovery.list('').reduce((n, v) => n + versionBytes(v.key, v.record), 0));
});

t.test('reaping after the retention, purging, and rule changes', async (t) => {
  const s = new Store();
  s.rules([rule('r/', HOUR), rule('s/', 3 * HOUR)]);
  s.put('r/a', '1', { nowMs: T0 });
  s.del('r/a', T0);
  s.put('s/a', '1');
  s.del('s/a', T0 + 10);
  t.equal(s.fsm.kvRecovery.earliestExpiryMs(), T0 + HOUR);
  t.same(s.apply({ type: 'kvRecoveryReap', nowMs: T0 + HOUR - 1 }), { kind: 'kvRecovery', removed: 0 });
  t.same(s.apply({ type: 'kvRecoveryReap', nowMs: T0 + HOUR }), { kind: 'kvRecovery', removed: 1 });
  t.same(s.versions('r/a'), []);
  t.same(s.versions('s/a'), [['1', 'deleted']]);

  // A shorter retention applies to what is kept; a key no rule covers keeps its own retention.
  s.rules([rule('s/', HOUR)]);
  t.equal(s.fsm.kvRecovery.earliestExpiryMs(), T0 + 10 + HOUR);
  s.put('r/b', 'x');
  s.del('r/b', T0 + 20);
  t.equal(s.fsm.kvRecovery.versionCount, 1, 'r/ is no longer covered');

  s.put('s/b', '1');
  s.put('s/b', '2');
  s.put('s/c', '1');
  s.del('s/c', T0 + 30);
  t.same(s.apply({ type: 'kvRecoveryPurge', key: 's/b' }), { kind: 'kvRecovery', removed: 1 });
  t.same(s.apply({ type: 'kvRecoveryPurge', key: 's/', recurse: true }), { kind: 'kvRecovery', removed: 2 });
  t.equal(s.fsm.kvRecovery.versionCount, 0);

  // No rules at all: the KV table stops telling (nothing more is kept).
  s.rules([]);
  s.put('s/d', '1');
  s.del('s/d', T0);
  t.equal(s.fsm.kvRecovery.versionCount, 0);
});

t.test('commands are validated', async (t) => {
  t.equal(validateCommand({ type: 'kvRecoveryRules', rules: [rule('a/')], maxBytes: 1024 }), null);
  t.match(validateCommand({ type: 'kvRecoveryRules', rules: [rule('b/'), rule('a/')], maxBytes: 1024 }), /sorted/);
  t.match(validateCommand({ type: 'kvRecoveryRules', rules: [rule('a/', 0)], maxBytes: 1024 }), /retention/);
  t.match(validateCommand({ type: 'kvRecoveryRules', rules: [rule('a/', 1, 0)], maxBytes: 1024 }), /max_versions/);
  t.match(validateCommand({ type: 'kvRecoveryRules', rules: [], maxBytes: 10 }), /max bytes/);
  t.match(validateCommand({ type: 'kvRecoveryReap', nowMs: -1 }), /nowMs/);
  t.match(validateCommand({ type: 'kvRecoveryPurge', key: '' }), /empty/);
  t.equal(validateCommand({ type: 'kvRecoveryPurge', key: '', recurse: true }), null);
  t.equal(validateCommand({ type: 'kvDelete', key: 'a', nowMs: 5 }), null);
  t.equal(validateCommand({ type: 'kvSet', key: 'a', value: '', flags: '0', nowMs: 5 }), null);
  const s = new Store();
  const duplicate = enc.encode(JSON.stringify({ type: 'kvRecoveryRules', rules: [rule('a/'), rule('a/')], maxBytes: 1024 }));
  t.match(s.fsm.apply(s.fsm.appliedIndex + 1, duplicate), { ok: false, code: 'invalidCommand' }, 'refused when applied, as every replica does');
});

/** A store that used every part of the table. */
function busyStore(): Store {
  const s = new Store();
  s.rules([rule('config/', HOUR, 3), rule('secret/', 2 * HOUR, 2)], 10 * 1024 * 1024);
  for (let i = 0; i < 200; i++) {
    s.put(`config/k${i % 40}`, `value ${i} ${'x'.repeat(i * 7)}`, { flags: String(i), nowMs: T0 + i });
    if (i % 3 === 0) s.del(`config/k${(i * 7) % 40}`, T0 + i);
  }
  s.put('secret/\u{1F600}', 'é');
  s.del('secret/\u{1F600}', T0 + 500);
  return s;
}

t.test('replicas applying the same log hold the same table and write the same snapshot', async (t) => {
  const a = busyStore();
  const b = busyStore();
  t.same(Buffer.from(a.fsm.snapshot()), Buffer.from(b.fsm.snapshot()));
  t.ok(a.fsm.kvRecovery.versionCount > 100);
});

t.test('snapshot round trip: the table comes back whole, in order, and encodes to the same bytes', async (t) => {
  const s = busyStore();
  const bytes = s.fsm.snapshot();
  const restored = new KonsulFsm();
  restored.restore(bytes);
  t.same(restored.kvRecovery.dump(), s.fsm.kvRecovery.dump());
  t.same(Buffer.from(restored.snapshot()), Buffer.from(bytes));
  // Restored rules are in force: the next delete is kept, and limits hold.
  restored.applyCommand(restored.appliedIndex + 1, { type: 'kvSet', key: 'config/new', value: Buffer.from('n').toString('base64'), flags: '0' });
  restored.applyCommand(restored.appliedIndex + 1, { type: 'kvDelete', key: 'config/new', nowMs: T0 + 9999 });
  t.equal(restored.kvRecovery.versionsOf('config/new').length, 1);
  // Plain dumps encode the same bytes (the archive tools' path).
  t.same(Buffer.from(encodeSnapshot(decodeSnapshot(bytes))), Buffer.from(bytes));
  // Many frames of versions: fed in small pieces, the decoder reads them all.
  const big = new Store();
  big.rules([rule('b/', HOUR, 1000)], 64 * 1024 * 1024);
  for (let i = 0; i < 300; i++) big.put('b/k', `${i}`.padEnd(1000, '.'));
  const bigBytes = big.fsm.snapshot();
  const decoder = new SnapshotDecoder({ kvEntry: () => {}, kvTombstone: () => {} });
  for (let at = 0; at < bigBytes.length; at += 777) decoder.write(bigBytes.subarray(at, at + 777));
  t.equal(decoder.finish().kvRecovery?.versions.length, 299);
});

t.test('a damaged kvRecovery section is refused', async (t) => {
  const s = busyStore();
  const bytes = s.fsm.snapshot();
  // Flip a byte inside the versions (and fix nothing else): the checksum catches it at least.
  const damaged = bytes.slice();
  const at = damaged.length - 200;
  damaged[at] = damaged[at]! ^ 0xff;
  t.throws(() => new KonsulFsm().restore(damaged), SnapshotFormatError);
});

t.test('a snapshotRestore at a lower index lowers the versions\' indexes', async (t) => {
  const s = busyStore();
  const dump = s.fsm.kvRecovery.dump();
  const lowered = kvRecoveryForRestoreAt(dump, 50);
  t.equal(lowered.index, 50);
  for (const v of lowered.versions) {
    t.ok(v.retiredIndex <= 50 && modifyIndexOf(v.record) <= 50);
  }
  t.equal(lowered.versions.length, dump.versions.length);
});
