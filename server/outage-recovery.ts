// Outage recovery (`konsul operator raft recover`): Konsul's counterpart of Consul's peers.json.
// When the majority of the servers is lost for good, the survivors can never elect a leader: every
// configuration in their logs still counts the dead servers. Run on a STOPPED server's data
// directory, recovery replaces the membership with the one in a peers file, keeping every entry
// of the log, committed or not (an entry acknowledged by the old leader may sit uncommitted here).
// See docs/adr/0018-outage-recovery.md.
//
// How: the state machine is rebuilt from the snapshot and every log entry, and written as a new
// snapshot at (lastIndex + 1, lastTerm + 1) that records the new membership; the log is emptied
// and the commit index set to the snapshot. That position is new (a crash before the final batch
// leaves a file that the next open removes as an interrupted write), is derived from the log's last
// entry only (survivors holding the same log produce the same snapshot), and is more up to date
// than any copy of the old log. The address book (peers.json in the data directory) learns the
// addresses from the peers file so the server can dial the servers it names.
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { joinHostPort } from '../lib/host-port.ts';
import { ConfigHistory } from '../raft/core/membership.ts';
import type { ConfState, HardState, SnapshotMeta } from '../raft/core/types.ts';
import type { HostStateMachine } from '../raft/host/state-machine.ts';
import { LOG_DB_DIR, LevelStorage } from '../raft/storage/level-storage.ts';
import { AddressBook } from './cluster/address-book.ts';
import { parseHostPort } from './config.ts';

/** The Raft storage inside a server's data directory (as server/main.ts opens it). */
export const RAFT_SUBDIR = 'raft';
/** More servers than any sane cluster: a bigger file is a mistake (a catalog dump, say). */
const MAX_PEERS = 64;
/** Server ids are node names; the same bound as the HTTP API's (DELETE /v1/cluster/leave/:id). */
const MAX_ID_CHARS = 256;
const PEER_KEYS = new Set(['id', 'address', 'non_voter']);
/** Log entries read from the storage's mirror at a time while rebuilding the state. */
const REPLAY_BATCH_BYTES = 16 * 1024 * 1024;

/** One server of the new membership, from a peers file in Consul's peers.json v3 shape. */
export interface RecoveryPeer {
  readonly id: string;
  /** Server-to-server (RPC) address, host:port. */
  readonly address: string;
  readonly voter: boolean;
}

/** The peers file cannot be used; nothing was changed. */
export class PeersFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'PeersFileError';
  }
}

/** Recovery refused to touch the data directory (running server, no data, wrong node); nothing was changed. */
export class RecoveryRefusedError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RecoveryRefusedError';
  }
}

/**
 * Parses and checks a peers file: a non-empty JSON array of `{"id", "address", "non_voter"}`,
 * ids and addresses unique, at least one voter. Unknown keys are refused: a misspelt `non_voter`
 * would silently make a voter.
 */
export function parsePeersFile(text: string, source: string): RecoveryPeer[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new PeersFileError(`${source}: not valid JSON: ${(err as Error).message}`);
  }
  const shape = 'a JSON array of {"id": "<node name>", "address": "<host>:<rpc port>", "non_voter": false}';
  if (!Array.isArray(raw)) throw new PeersFileError(`${source}: expected ${shape}`);
  if (raw.length === 0) throw new PeersFileError(`${source}: the list of servers is empty; name at least this server`);
  if (raw.every((e) => typeof e === 'string')) {
    throw new PeersFileError(`${source}: this is the old peers.json format (a list of addresses); Konsul needs ${shape}`);
  }
  if (raw.length > MAX_PEERS) throw new PeersFileError(`${source}: ${raw.length} servers, more than the ${MAX_PEERS} allowed`);
  const peers: RecoveryPeer[] = [];
  const ids = new Set<string>();
  const addresses = new Map<string, string>();
  raw.forEach((entry: unknown, i) => {
    const where = `${source}: server ${i + 1}`;
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) throw new PeersFileError(`${where}: expected an object, got ${JSON.stringify(entry)}`);
    const fields = entry as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      if (!PEER_KEYS.has(key)) throw new PeersFileError(`${where}: unknown key "${key}" (known: id, address, non_voter)`);
    }
    const { id, address, non_voter: nonVoter } = fields;
    if (typeof id !== 'string' || id.trim() === '') throw new PeersFileError(`${where}: "id" must be the server's node name, a non-empty string`);
    if (id !== id.trim() || id.length > MAX_ID_CHARS) throw new PeersFileError(`${where}: "id" ${JSON.stringify(id)} has surrounding spaces or is over ${MAX_ID_CHARS} characters`);
    if (typeof address !== 'string') throw new PeersFileError(`${where} (${id}): "address" must be a string, the server's RPC address host:port`);
    const canonical = peerAddress(address, `${where} (${id})`);
    if (nonVoter !== undefined && typeof nonVoter !== 'boolean') throw new PeersFileError(`${where} (${id}): "non_voter" must be true or false`);
    if (ids.has(id)) throw new PeersFileError(`${where}: server "${id}" is listed twice`);
    const twin = addresses.get(canonical);
    if (twin !== undefined) throw new PeersFileError(`${where}: servers "${twin}" and "${id}" have the same address ${canonical}`);
    ids.add(id);
    addresses.set(canonical, id);
    peers.push({ id, address: canonical, voter: nonVoter !== true });
  });
  if (!peers.some((p) => p.voter)) throw new PeersFileError(`${source}: no voter (every server has "non_voter": true); a cluster needs at least one`);
  return peers;
}

function peerAddress(text: string, where: string): string {
  let parsed;
  try {
    parsed = parseHostPort(text, 'address');
  } catch {
    throw new PeersFileError(`${where}: "address" must be host:port, got ${JSON.stringify(text)}`);
  }
  // parseHostPort defaults an empty host to 127.0.0.1, which would be wrong for any other machine.
  if (/^\s*:/.test(text) || parsed.port < 1) throw new PeersFileError(`${where}: "address" needs a host and a port from 1 to 65535, got ${JSON.stringify(text)}`);
  return joinHostPort(parsed.host, parsed.port);
}

export function readPeersFile(path: string): RecoveryPeer[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw new PeersFileError(`cannot read peers file ${path}: ${(err as Error).message}`);
  }
  return parsePeersFile(text, path);
}

export function confStateOf(peers: readonly RecoveryPeer[]): ConfState {
  return {
    voters: peers.filter((p) => p.voter).map((p) => p.id).sort(),
    learners: peers.filter((p) => !p.voter).map((p) => p.id).sort(),
  };
}

export interface RecoverOptions {
  /** The server's data directory (its --data-dir). */
  readonly dataDir: string;
  /** The server's node name: it must be a voter of the new membership, or it would never campaign. */
  readonly nodeId: string;
  readonly peers: readonly RecoveryPeer[];
  /** Check everything and report what would change, without writing. */
  readonly dryRun?: boolean;
}

/** The Raft state found in the data directory. */
export interface RaftStateFound {
  /** The snapshot in force (null: none, the log starts at 1). */
  readonly snapshot: SnapshotMeta | null;
  readonly lastIndex: number;
  readonly lastTerm: number;
  readonly hardState: HardState;
  /** The membership in force: the latest configuration in the log, committed or not. */
  readonly membership: ConfState;
}

export interface RecoveryOutcome {
  readonly found: RaftStateFound;
  readonly membership: ConfState;
  /** 'recovered': written; 'unchanged': the storage already holds exactly this membership; 'dryRun'. */
  readonly result: 'recovered' | 'unchanged' | 'dryRun';
  /** The snapshot recovery wrote (or would write), holding every entry and the new membership. */
  readonly snapshot: SnapshotMeta;
  /** Log entries replayed on top of the snapshot, and how many of them this server had not seen committed. */
  readonly replayedEntries: number;
  readonly uncommittedEntries: number;
  readonly warnings: readonly string[];
}

/**
 * Rewrites the membership of the stopped server whose data is in `dataDir` (see the file comment).
 * Throws RecoveryRefusedError before changing anything when the directory is in use, holds no
 * Raft state, or the node is not a voter of `peers`; StorageCorruptionError when the storage
 * cannot be trusted. Safe to run again: with the same peers it changes nothing.
 */
export async function recoverCluster(options: RecoverOptions): Promise<RecoveryOutcome> {
  const { dataDir, nodeId, peers } = options;
  const membership = confStateOf(peers);
  if (!membership.voters.includes(nodeId)) {
    const listed = peers.some((p) => p.id === nodeId) ? 'listed as a non-voter' : 'not listed';
    throw new RecoveryRefusedError(
      `this server ("${nodeId}") is ${listed} in the peers file; it must be a voter, or it would never hold an election (pass --node with the name the server runs with)`,
    );
  }
  const raftDir = join(dataDir, RAFT_SUBDIR);
  if (!existsSync(join(raftDir, LOG_DB_DIR, 'CURRENT'))) {
    throw new RecoveryRefusedError(`no Konsul server data in ${dataDir} (there is no ${join(raftDir, LOG_DB_DIR)}): nothing to recover; check --data-dir`);
  }
  checkNodeName(dataDir, nodeId);

  const storage = await openStopped(raftDir);
  try {
    if (storage.recoveryReport.created) throw new RecoveryRefusedError(`${raftDir} holds no Raft state: nothing to recover`);
    const found = inspect(storage);
    if (found.lastIndex === 0) {
      throw new RecoveryRefusedError(`the Raft log in ${raftDir} is empty: this server never joined a cluster, so there is nothing to recover; start it normally`);
    }
    const warnings = [...storage.recoveryReport.warnings];
    const snapshotIndex = found.snapshot?.index ?? 0;
    const replayedEntries = found.lastIndex - snapshotIndex;
    const uncommittedEntries = found.lastIndex - found.hardState.commit;
    if (replayedEntries === 0 && found.hardState.commit === found.lastIndex && found.snapshot && sameConf(found.snapshot.confState, membership)) {
      // Already recovered to this membership (or never needed it): a second run is a no-op.
      if (!options.dryRun) learnAddresses(dataDir, peers);
      return { found, membership, result: 'unchanged', snapshot: found.snapshot, replayedEntries, uncommittedEntries, warnings };
    }
    const snapshot: SnapshotMeta = { index: found.lastIndex + 1, term: found.lastTerm + 1, confState: membership };
    if (options.dryRun) return { found, membership, result: 'dryRun', snapshot, replayedEntries, uncommittedEntries, warnings };

    const fsm = await rebuildState(storage, found);
    const blocker = (fsm as HostStateMachine).snapshotBlocker?.() ?? null;
    if (blocker !== null) warnings.push(`a snapshot restore was in progress (${blocker}); it was never committed and is dropped: run the restore again once the cluster is back`);
    // The snapshot is the recovery's own entry, one past the log, in a term of its own.
    fsm.applyNoop(snapshot.index);
    const hardState: HardState =
      found.hardState.term >= snapshot.term
        ? { term: found.hardState.term, vote: found.hardState.vote, commit: snapshot.index }
        : { term: snapshot.term, vote: '', commit: snapshot.index };
    await installSnapshot(storage, fsm, snapshot, hardState);
    learnAddresses(dataDir, peers);
    return { found, membership, result: 'recovered', snapshot, replayedEntries, uncommittedEntries, warnings };
  } finally {
    await storage.close();
  }
}

/** Opens the storage, refusing clearly when a running server holds its LevelDB lock. */
async function openStopped(raftDir: string): Promise<LevelStorage> {
  try {
    // No trailing entries: nothing of the old log is worth keeping once its entries are in the snapshot.
    return await LevelStorage.open(raftDir, { sync: true, trailingEntries: 0 });
  } catch (err) {
    const cause = (err as { cause?: { code?: unknown } }).cause;
    if ((err as { code?: unknown }).code === 'LEVEL_DATABASE_NOT_OPEN' && cause?.code === 'LEVEL_LOCKED') {
      throw new RecoveryRefusedError(
        `${join(raftDir, LOG_DB_DIR)} is locked by another process: a Konsul server is still running on this data directory. Stop it first; recovery works on a stopped server only`,
      );
    }
    throw err;
  }
}

/**
 * A server has learned its own name in its address book the first time it ran. A name absent
 * from a non-empty book is almost certainly the wrong --node: refuse before writing anything.
 */
function checkNodeName(dataDir: string, nodeId: string): void {
  const book = new AddressBook(dataDir);
  const known = book.all();
  if (known.length === 0 || book.get(nodeId)) return;
  throw new RecoveryRefusedError(
    `no server "${nodeId}" in ${join(dataDir, 'peers.json')} (it knows ${known.map((s) => s.id).join(', ')}): is this the right data directory, and the name the server runs with (--node)?`,
  );
}

function inspect(storage: LevelStorage): RaftStateFound {
  const meta = storage.snapshot().meta;
  const snapshot = meta.index > 0 ? meta : null;
  const lastIndex = storage.lastIndex();
  const history = new ConfigHistory(meta.index, meta.confState);
  for (let lo = meta.index + 1; lo <= lastIndex; ) {
    const batch = storage.entries(lo, lastIndex + 1, REPLAY_BATCH_BYTES);
    history.record(batch);
    lo += batch.length;
  }
  return { snapshot, lastIndex, lastTerm: storage.term(lastIndex), hardState: storage.hardState(), membership: history.current() };
}

/** The state machine as of the last log entry: the snapshot, then every entry after it, committed or not. */
async function rebuildState(storage: LevelStorage, found: RaftStateFound): Promise<KonsulFsm> {
  const fsm = new KonsulFsm();
  if (found.snapshot) {
    const reader = await storage.openSnapshot(found.snapshot);
    const restore = fsm.beginRestore();
    let finished = false;
    try {
      for (let piece = await reader.read(1024 * 1024); piece !== null; piece = await reader.read(1024 * 1024)) restore.write(piece);
      finished = true;
      const restored = restore.finish();
      if (restored !== found.snapshot.index) throw new Error(`snapshot ${found.snapshot.index} restored the state to index ${restored}`);
    } finally {
      if (!finished) restore.abort();
      await reader.close();
    }
  }
  for (let lo = (found.snapshot?.index ?? 0) + 1; lo <= found.lastIndex; ) {
    const batch = storage.entries(lo, found.lastIndex + 1, REPLAY_BATCH_BYTES);
    for (const entry of batch) {
      // Exactly what the Raft host does with a committed entry.
      if (entry.type === 'normal' && entry.data.length > 0) fsm.apply(entry.index, entry.data);
      else fsm.applyNoop(entry.index);
    }
    lo += batch.length;
  }
  return fsm;
}

/**
 * Writes the state as the snapshot `meta` and installs it with `hardState` in one batch that also
 * drops the whole log: the same path as a snapshot received from a leader (file first, synced,
 * then the batch), so a crash leaves either the old storage or the recovered one.
 */
async function installSnapshot(storage: LevelStorage, fsm: KonsulFsm, meta: SnapshotMeta, hardState: HardState): Promise<void> {
  // The storage wants the length up front (as a leader announces it); a first pass over a second
  // view counts it without holding the encoding in memory.
  let totalBytes = 0;
  const counting = fsm.snapshotView();
  try {
    const pieces = counting.chunks();
    for (let next = pieces.next(); next.done !== true; next = pieces.next()) totalBytes += next.value.length;
  } finally {
    counting.release();
  }
  const view = fsm.snapshotView();
  const sink = storage.receiveSnapshot(meta, totalBytes);
  try {
    const pieces = view.chunks();
    for (let next = pieces.next(); next.done !== true; next = pieces.next()) await sink.write(next.value);
    await sink.finish();
  } catch (err) {
    await sink.abort();
    throw err;
  } finally {
    view.release();
  }
  await storage.save({ snapshot: { meta, data: new Uint8Array(0) }, entries: [], hardState });
}

function learnAddresses(dataDir: string, peers: readonly RecoveryPeer[]): void {
  const book = new AddressBook(dataDir);
  for (const p of peers) book.learn({ id: p.id, rpcAddr: p.address, httpAddr: '' });
}

function sameConf(a: ConfState, b: ConfState): boolean {
  const same = (x: readonly string[], y: readonly string[]): boolean => x.length === y.length && [...x].sort().every((v, i) => v === [...y].sort()[i]);
  return same(a.voters, b.voters) && same(a.learners, b.learners);
}
