// Snapshots through the real host: LevelDB storage with snapshot files, the Konsul state machine,
// and TCP transports on 127.0.0.1. A snapshot taken while writes go on holds exactly the state at
// its index; a follower installs a multi-MiB snapshot streamed in many chunks, byte for byte, the
// event loop running between the pieces; a restart restores from the file.
import t, { type Test } from 'tap';
import { encodeCommand, kvSetCommand } from '../../fsm/commands.ts';
import { KonsulFsm } from '../../fsm/konsul-fsm.ts';
import type { NodeId } from '../core/types.ts';
import { LevelStorage } from '../storage/level-storage.ts';
import { tempDir } from '../storage/test-helpers.ts';
import { RaftTransport } from '../transport/raft-transport.ts';
import { RaftHost, type HostStateMachine, type SnapshotEvent, type StateMachineRestore } from './raft-host.ts';
import { sleep } from '../../test/kit/wait.ts';


async function until(cond: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(5);
  }
}

/** A value of `bytes` bytes that names its key and version, so any mix-up shows. */
function value(key: number, version: number, bytes: number): Uint8Array {
  const head = `k${key}v${version}:`;
  return Buffer.from(head.padEnd(bytes, String.fromCharCode(97 + ((key + version) % 26))));
}

function put(host: RaftHost, key: number, version: number, bytes: number): Promise<unknown> {
  return host.propose(encodeCommand(kvSetCommand({ key: `data/${key}`, value: value(key, version, bytes) })));
}

/** Writes keys [from, to) with `concurrency` proposals in flight. */
async function load(host: RaftHost, from: number, to: number, bytes: number, concurrency = 64): Promise<void> {
  let next = from;
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < to) await put(host, next++, 0, bytes);
    }),
  );
}

/** The state machine fed the encoded state of a snapshot file, read from the storage in pieces. */
async function restoredFromFile(t: Test, storage: LevelStorage): Promise<KonsulFsm> {
  const fsm = new KonsulFsm();
  const restore = fsm.beginRestore();
  const reader = await storage.openSnapshot(storage.snapshot().meta);
  for (let piece = await reader.read(100_000); piece !== null; piece = await reader.read(100_000)) restore.write(piece);
  await reader.close();
  t.equal(restore.finish(), storage.snapshot().meta.index, 'the restored state is at the snapshot index');
  return fsm;
}

/** A state machine that applied exactly the log entries 1..index (the log must still hold them). */
function replayedTo(storage: LevelStorage, index: number): KonsulFsm {
  const fsm = new KonsulFsm();
  for (const entry of storage.entries(1, index + 1, Number.MAX_SAFE_INTEGER)) {
    if (entry.type === 'normal' && entry.data.length > 0) fsm.apply(entry.index, entry.data);
    else fsm.applyNoop(entry.index);
  }
  return fsm;
}

async function singleNode(t: Test, options: { trailingEntries: number; snapshotEveryEntries: number }): Promise<{ host: RaftHost; storage: LevelStorage; fsm: KonsulFsm; events: SnapshotEvent[] }> {
  const dir = await tempDir(t, 'konsul-host-snap-');
  const storage = await LevelStorage.open(dir, { founders: { voters: ['n1'], learners: [] }, trailingEntries: options.trailingEntries });
  const fsm = new KonsulFsm();
  const events: SnapshotEvent[] = [];
  const host = await RaftHost.open({ id: 'n1', storage, stateMachine: fsm, tickMs: 10, snapshotEveryEntries: options.snapshotEveryEntries, onSnapshot: (e) => events.push(e) });
  t.teardown(() => host.stop());
  host.start();
  await until(() => host.isReadyLeader(), 5000, 'leadership');
  return { host, storage, fsm, events };
}

t.test('a snapshot taken while writes continue holds exactly the state at its index', async (t) => {
  // Everything stays in the log (huge trailing margin) so the state at any index can be replayed.
  const { host, storage, events } = await singleNode(t, { trailingEntries: 1_000_000, snapshotEveryEntries: 1500 });
  await load(host, 0, 3000, 1000);
  await until(() => host.snapshotStats().taken >= 1, 5000, 'an automatic snapshot');

  // Writers keep going during the whole snapshot.
  let writing = true;
  let acked = 0;
  let version = 1;
  const writers = Promise.all(
    Array.from({ length: 16 }, async (_, w) => {
      while (writing) {
        await put(host, (w * 97 + version) % 3000, version++, 1000);
        acked++;
      }
    }),
  );
  await sleep(20);
  const ackedBefore = acked;
  const { index } = await host.snapshotNow();
  const ackedDuring = acked - ackedBefore;
  await sleep(20);
  writing = false;
  await writers;
  t.ok(ackedDuring > 0, `${ackedDuring} writes were acknowledged while the snapshot was written`);
  t.ok(host.applied() > index, `writes went on past the snapshot (${index} → ${host.applied()})`);
  t.equal(storage.snapshot().meta.index, index);

  const restored = await restoredFromFile(t, storage);
  const replayed = replayedTo(storage, index);
  t.ok(Buffer.from(restored.snapshot()).equals(Buffer.from(replayed.snapshot())), 'the file restores to exactly the state at its index');

  const stats = host.snapshotStats();
  t.ok(stats.taken >= 2);
  t.equal(stats.lastIndex, index);
  t.ok(stats.lastBytes > 3_000_000, `${stats.lastBytes} bytes`);
  t.ok(stats.maxDurationMs >= stats.lastDurationMs && stats.lastDurationMs > 0);
  t.equal(stats.installs, 0);
  t.same(
    events.map((e) => e.kind),
    Array.from({ length: stats.taken }, () => 'taken'),
  );
  t.equal(events.at(-1)?.index, index);
});

/**
 * The Konsul state machine, watched: how often the event loop ran between the pieces of a restore,
 * and what the host's applied index was when the new state was swapped in.
 */
class WatchedFsm implements HostStateMachine {
  readonly inner = new KonsulFsm();
  restoreWrites = 0;
  /** Turns of the event loop (setImmediate callbacks) seen between the first and the last piece. */
  turnsDuringRestore = 0;
  appliedAtSwap: number[] = [];
  host: RaftHost | null = null;

  apply(index: number, command: Uint8Array): unknown {
    return this.inner.apply(index, command);
  }
  applyNoop(index: number): void {
    this.inner.applyNoop(index);
  }
  snapshotView(): ReturnType<KonsulFsm['snapshotView']> {
    return this.inner.snapshotView();
  }
  beginRestore(): StateMachineRestore {
    const restore = this.inner.beginRestore();
    let turns = 0;
    let counting = true;
    const tick = (): void => {
      turns++;
      if (counting) setImmediate(tick);
    };
    setImmediate(tick);
    return {
      write: (piece) => {
        this.restoreWrites++;
        restore.write(piece);
      },
      finish: () => {
        counting = false;
        this.turnsDuringRestore = turns;
        this.appliedAtSwap.push(this.host?.applied() ?? -1);
        return restore.finish();
      },
      abort: () => {
        counting = false;
        restore.abort();
      },
    };
  }
}

interface ClusterNode {
  readonly id: NodeId;
  readonly storage: LevelStorage;
  readonly transport: RaftTransport;
  readonly host: RaftHost;
  readonly fsm: WatchedFsm;
  readonly events: SnapshotEvent[];
}

async function startNode(t: Test, id: NodeId, book: Map<string, string>, options: { founders?: boolean; dir?: string }): Promise<ClusterNode> {
  const dir = options.dir ?? (await tempDir(t, 'konsul-host-node-'));
  const storage = await LevelStorage.open(dir, { founders: options.founders ? { voters: [id], learners: [] } : undefined, trailingEntries: 0 });
  const fsm = new WatchedFsm();
  let host: RaftHost | null = null;
  const transport = new RaftTransport({
    nodeId: id,
    listen: { host: '127.0.0.1', port: 0 },
    resolve: (peer) => book.get(peer),
    onMessage: (m) => host?.receive(m),
    onUnreachable: (peer) => host?.reportUnreachable(peer),
    onSnapshotStatus: (peer, ok) => host?.reportSnapshot(peer, ok),
    snapshots: storage,
    snapshotChunkBytes: 64 * 1024,
  });
  const events: SnapshotEvent[] = [];
  host = await RaftHost.open({ id, storage, stateMachine: fsm, transport, tickMs: 10, snapshotEveryEntries: 1_000_000, onSnapshot: (e) => events.push(e) });
  fsm.host = host;
  const bound = await transport.start();
  book.set(id, `${bound.host}:${bound.port}`);
  const node = { id, storage, transport, host, fsm, events };
  host.start();
  return node;
}

async function stopNode(node: ClusterNode): Promise<void> {
  await node.host.stop();
  await node.transport.stop();
}

t.test('a follower installs a multi-MiB snapshot streamed in many chunks, byte for byte, and restarts from it', async (t) => {
  const book = new Map<string, string>();
  const leader = await startNode(t, 'L', book, { founders: true });
  t.teardown(() => stopNode(leader));
  await until(() => leader.host.isReadyLeader(), 5000, 'leadership');
  await load(leader.host, 0, 3000, 2000);
  const snap = await leader.host.snapshotNow();
  t.equal(leader.storage.firstIndex(), snap.index + 1, 'the leader compacted its whole log: only a snapshot can bring a new member up');
  const snapshotBytes = leader.host.snapshotStats().lastBytes;
  t.ok(snapshotBytes > 6_000_000, `a snapshot of ${(snapshotBytes / 1048576).toFixed(1)} MiB (about ${Math.ceil(snapshotBytes / 65536)} chunks of 64 KiB)`);

  const followerDir = await tempDir(t, 'konsul-host-follower-');
  let follower = await startNode(t, 'F', book, { dir: followerDir });
  t.teardown(() => stopNode(follower));
  await leader.host.proposeConfChange({ type: 'addLearner', node: 'F' });
  // Writes go on while the follower catches up.
  await load(leader.host, 3000, 3100, 2000, 8);
  await until(() => follower.host.applied() === leader.host.applied(), 20_000, 'the follower to catch up');

  t.ok(Buffer.from(follower.fsm.inner.snapshot()).equals(Buffer.from(leader.fsm.inner.snapshot())), 'the follower holds the same state, byte for byte');
  t.equal(follower.host.snapshotStats().installs, 1);
  t.equal(follower.events.filter((e) => e.kind === 'installed').length, 1);
  t.equal(follower.storage.snapshot().meta.index, snap.index, "the leader's snapshot is in force on the follower");
  t.ok(follower.fsm.restoreWrites >= Math.floor(snapshotBytes / (256 * 1024)), `fed to the state machine in ${follower.fsm.restoreWrites} pieces`);
  t.ok(follower.fsm.turnsDuringRestore > 0, `the event loop ran ${follower.fsm.turnsDuringRestore} times while the pieces were fed`);
  t.same(follower.fsm.appliedAtSwap, [0], 'the old state was in force until the swap');

  // A restart restores the state machine from the file, streamed.
  await stopNode(follower);
  follower = await startNode(t, 'F', book, { dir: followerDir });
  t.equal(follower.events[0]?.kind, 'restored');
  t.equal(follower.events[0]?.index, snap.index);
  await load(leader.host, 3100, 3110, 100, 4);
  await until(() => follower.host.applied() === leader.host.applied(), 20_000, 'the restarted follower to catch up');
  t.ok(Buffer.from(follower.fsm.inner.snapshot()).equals(Buffer.from(leader.fsm.inner.snapshot())), 'the same state after the restart');
});
