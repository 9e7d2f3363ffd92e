// The leader's side of recoverable deletes: it proposes the configured rules when the FSM holds
// others, then reaps once a version expired; followers propose nothing. And the config keys.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { decodeCommand, type Command } from '../fsm/commands.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { ConfigError, readConfigFile } from './config.ts';
import { KvRecoveryKeeper } from './kv-recovery-reaper.ts';

const T0 = 1_800_000_000_000;

/** A one-server "Raft" that applies what is proposed to a real FSM at once. */
function harness(leader = true) {
  const fsm = new KonsulFsm();
  const proposed: Command[] = [];
  const raft = {
    isReadyLeader: () => leader,
    propose: async (bytes: Uint8Array) => {
      proposed.push(decodeCommand(bytes));
      return fsm.apply(fsm.appliedIndex + 1, bytes);
    },
  };
  return { fsm, proposed, raft };
}

t.test('the leader proposes its rules, once, then reaps expired versions', async (t) => {
  const { fsm, proposed, raft } = harness();
  const rules = [{ prefix: 'config/', retentionMs: 1000, maxVersions: 10 }];
  const keeper = new KvRecoveryKeeper({ raft, table: fsm.kvRecovery, rules, maxBytes: 4096, checkEveryMs: 1000 });
  t.notOk(keeper.inSync());
  await keeper.check(T0);
  await keeper.check(T0);
  t.same(proposed, [{ type: 'kvRecoveryRules', rules, maxBytes: 4096 }], 'once: the second check sees the FSM in sync');
  t.ok(keeper.inSync());
  fsm.applyCommand(fsm.appliedIndex + 1, { type: 'kvSet', key: 'config/a', value: 'dg==', flags: '0' });
  fsm.applyCommand(fsm.appliedIndex + 1, { type: 'kvDelete', key: 'config/a', nowMs: T0 });
  await keeper.check(T0 + 999);
  t.equal(proposed.length, 1, 'nothing expired yet');
  await keeper.check(T0 + 1000);
  t.same(proposed[1], { type: 'kvRecoveryReap', nowMs: T0 + 1000 });
  t.equal(fsm.kvRecovery.versionCount, 0);
  await keeper.check(T0 + 5000);
  t.equal(proposed.length, 2, 'nothing left to reap');
});

t.test('a follower proposes nothing; no rules anywhere proposes nothing', async (t) => {
  const follower = harness(false);
  await new KvRecoveryKeeper({ raft: follower.raft, table: follower.fsm.kvRecovery, rules: [{ prefix: 'a/', retentionMs: 1, maxVersions: 1 }], maxBytes: 4096, checkEveryMs: 1000 }).check(T0);
  t.same(follower.proposed, []);
  const unused = harness();
  await new KvRecoveryKeeper({ raft: unused.raft, table: unused.fsm.kvRecovery, rules: [], maxBytes: 12345, checkEveryMs: 1000 }).check(T0);
  t.same(unused.proposed, [], 'a cluster without rules writes nothing to its log');
  // A leader without rules while the FSM has some (configured elsewhere): it proposes none.
  unused.fsm.applyCommand(unused.fsm.appliedIndex + 1, { type: 'kvRecoveryRules', rules: [{ prefix: 'a/', retentionMs: 1, maxVersions: 1 }], maxBytes: 4096 });
  await new KvRecoveryKeeper({ raft: unused.raft, table: unused.fsm.kvRecovery, rules: [], maxBytes: 4096, checkEveryMs: 1000 }).check(T0);
  t.same(unused.proposed, [{ type: 'kvRecoveryRules', rules: [], maxBytes: 4096 }]);
});

t.test('config: kv_recovery and kv_recovery_max_bytes', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'konsul-kvrec-config-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const read = (config: unknown) => {
    const file = join(dir, 'c.json');
    writeFileSync(file, JSON.stringify(config));
    return readConfigFile(file);
  };
  t.same(read({ kv_recovery: [{ prefix: 'z/', retention: '1h' }, { prefix: 'config/', retention: '720h', max_versions: 3 }], kv_recovery_max_bytes: 2048 }), {
    kvRecovery: [
      { prefix: 'config/', retentionMs: 720 * 3_600_000, maxVersions: 3 },
      { prefix: 'z/', retentionMs: 3_600_000, maxVersions: 10 },
    ],
    kvRecoveryMaxBytes: 2048,
  });
  t.throws(() => read({ kv_recovery: [{ prefix: 'a/', retention: 'soon' }] }), ConfigError);
  t.throws(() => read({ kv_recovery: [{ prefix: 'a/', retention: '0s' }] }), /retention/);
  t.throws(() => read({ kv_recovery: [{ prefix: 'a/', retention: '1h' }, { prefix: 'a/', retention: '2h' }] }), /twice/);
  t.throws(() => read({ kv_recovery: [{ prefix: 'a/', retention: '1h', max_versions: 0 }] }), /max_versions/);
  t.throws(() => read({ kv_recovery: [{ prefix: 'a/', retention: '1h', extra: 1 }] }), /unknown key/);
  t.throws(() => read({ kv_recovery: { prefix: 'a/' } }), /list/);
  t.throws(() => read({ kv_recovery_max_bytes: 5 }), /kv_recovery_max_bytes/);
});
