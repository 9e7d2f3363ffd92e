// Konsul's replicated state machine: applies committed Raft entries to the tables, in log order,
// deterministically. Every replica that applies the same entries holds the same state and answers
// the same results; nothing here reads a clock, randomness or the environment.
//
// One index space: the Raft log index of the entry being applied. It becomes the CreateIndex and
// ModifyIndex of what the entry writes, and each table remembers the last index that changed it
// (for blocking queries). The host (raft/host) calls `apply` for normal entries with data and
// `applyNoop` for empty entries and membership changes: every index once, in order.

import {
  parseFlags,
  parseValue,
  tryDecodeCommand,
  validateCommand,
  type Command,
  type EventFireCommand,
  type RestoreCommand,
  type SnapshotRestoreCommand,
  type TxnCommand,
} from './commands.ts';
import { decodeSnapshot, encodeSnapshotPieces, encodeSnapshotView, SnapshotDecoder, SnapshotFormatError, type FsmState, type FsmView } from './snapshot.ts';
import { smallTablesForRestoreAt, stateForRestoreAt } from './restore.ts';
import { RestoreRejectedError, StagedRestore, type StagedRestoreProgress } from './staged-restore.ts';
import { EventsTable, userEventJson, type EventFireResult, type EventsTableDump } from './state/events.ts';
import { applyKvTxn, txnResultJson, type TxnApplyResult, type TxnKvOp, type TxnKvVerb } from './state/kv-txn.ts';
import { CatalogTable, EMPTY_CATALOG_DUMP, type CatalogApplyResult, type CatalogTableDump, type CatalogWriteOutcome } from './state/catalog.ts';
import type { CatalogCommand } from './state/catalog-commands.ts';
import { KvTable, KvTableBuilder, type KvWriteOutcome, type SessionLookup } from './state/kv.ts';
import type { SessionCommand } from './state/session-commands.ts';
import { EMPTY_SESSIONS_DUMP, sessionJson, SessionsTable, type SessionApplyResult, type SessionCatalogLookup, type SessionsChange, type SessionsTableDump } from './state/sessions.ts';
import { WatchRegistry, type WatcherErrorHandler } from './watch.ts';
import { EMPTY_KV_RECOVERY_DUMP, KvRecoveryTable, type KvRecoveryApplyResult, type KvRecoveryDump } from './state/kv-recovery.ts';
import type { HostStateMachine, StateMachineRestore, StateMachineSnapshot } from '../raft/host/state-machine.ts';

/** Why a command was not applied (the state is unchanged). */
export type ApplyErrorCode =
  /** The bytes are not a valid command (corruption, or a command from an unknown version). */
  | 'invalidCommand'
  /** acquire/release with an empty session id (Consul: "missing session", HTTP 500). */
  | 'missingSession'
  /** acquire with a session that does not exist (Consul: `invalid session "<id>"`, HTTP 500). */
  | 'invalidSession'
  /** A session create the state refuses (missing node or check, critical check), Consul's text, HTTP 500. */
  | 'sessionRejected'
  /** A staged restore command refused (none or another in progress, a bad chunk, a failed check). */
  | 'restoreRejected';

export interface ApplyError {
  readonly ok: false;
  readonly code: ApplyErrorCode;
  /** For missingSession/invalidSession, Consul's exact error text (clients match on it). */
  readonly error: string;
}

/**
 * What applying a command answers: Consul's true/false for a KV write (kvDeleteTree and
 * kvReapTombstones always true), or an error that changed nothing.
 */
export type ApplyResult = boolean | ApplyError;

/** Everything `apply` answers: ApplyResult for KV writes, or the result type of a table's command. */
export type FsmResult = ApplyResult | TxnApplyResult | EventFireResult | CatalogApplyResult | SessionApplyResult | KvRecoveryApplyResult;

/** A broken contract between the host and the FSM (a bug, never an expected outcome). */
export class FsmInvariantError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FsmInvariantError';
  }
}

export interface KonsulFsmOptions {
  /** Overrides the sessions table as the lookup KV locks use (tests of the KV side only). */
  readonly sessions?: SessionLookup;
  /** Receives exceptions thrown by watcher callbacks; see WatchRegistry. */
  readonly onWatcherError?: WatcherErrorHandler;
}

export class KonsulFsm implements HostStateMachine {
  readonly kv = new KvTable();
  readonly events = new EventsTable();
  readonly catalog = new CatalogTable();
  readonly sessions = new SessionsTable();
  /** Recoverable deletes: retired values of keys under configured prefixes; the FSM's clock dates them. */
  readonly kvRecovery = new KvRecoveryTable(this.kv, () => this.sessions.clockMs());
  readonly watches: WatchRegistry;
  /** What KV locks consult: the sessions table, unless a test supplies its own. */
  private readonly sessionLookup: SessionLookup;
  /** Nodes and checks for session creation: the catalog table implements this lookup. */
  private readonly sessionCatalog: SessionCatalogLookup = this.catalog;
  private lastApplied = 0;
  /** A restore between its restoreBegin and its commit or abort (restore-commands.ts). */
  private staged: StagedRestore | null = null;

  constructor(options: KonsulFsmOptions = {}) {
    this.sessionLookup = options.sessions ?? this.sessions;
    this.watches = new WatchRegistry(options.onWatcherError ? { onWatcherError: options.onWatcherError } : {});
  }

  /** The index of the last entry applied (or restored from a snapshot); 0 initially. */
  get appliedIndex(): number {
    return this.lastApplied;
  }

  /**
   * Applies the command in the log entry at `index`. Never throws because of the command: an
   * invalid one answers an ApplyError and changes nothing but the applied index (every replica
   * does the same, so replaying the log cannot crash them all). Throws FsmInvariantError if the
   * host applies out of order; rethrows a watcher callback's exception after the apply completed.
   */
  apply(index: number, command: Uint8Array): FsmResult {
    this.checkNextIndex(index);
    const decoded = tryDecodeCommand(command);
    if (!decoded.ok) {
      this.lastApplied = index;
      return { ok: false, code: 'invalidCommand', error: decoded.error };
    }
    return this.execute(index, decoded.command);
  }

  /** Applies an already decoded command (validated here too): for in-process use and tests. */
  applyCommand(index: number, command: Command): FsmResult {
    this.checkNextIndex(index);
    const problem = validateCommand(command);
    if (problem !== null) {
      this.lastApplied = index;
      return { ok: false, code: 'invalidCommand', error: problem };
    }
    return this.execute(index, command);
  }

  /** An entry without a command (empty normal entry, membership change): only advances the index. */
  applyNoop(index: number): void {
    this.checkNextIndex(index);
    this.lastApplied = index;
  }

  /** The staged restore in progress, if any. */
  restoreProgress(): StagedRestoreProgress | null {
    return this.staged?.progress() ?? null;
  }

  /**
   * Why a snapshot cannot be taken now, or null. A staged restore's tables built so far are in no
   * snapshot: a replica installing a snapshot taken mid-restore would miss the earlier chunks and
   * refuse the later ones, unlike the others. So no replica snapshots until the commit or abort.
   */
  snapshotBlocker(): string | null {
    return this.staged === null ? null : `restore ${this.staged.id} in progress`;
  }

  /** The whole state as deterministic bytes (see snapshot.ts), in one buffer. */
  snapshot(): Uint8Array {
    return encodeSnapshotView(this.view());
  }

  /**
   * A view of the state as of the applied index, encoded piece by piece (raft/host/state-machine.ts):
   * O(1) for the KV table (copy-on-write), a dump of the small tables (ADR 0015).
   */
  snapshotView(): StateMachineSnapshot {
    let view: FsmView | null = this.view();
    return {
      index: view.appliedIndex,
      chunks(pieceBytes?: number): Iterator<Uint8Array> {
        if (view === null) throw new FsmInvariantError('snapshot view read after its release');
        return encodeSnapshotPieces(view, pieceBytes);
      },
      release(): void {
        // Dropping the reference is all: the nodes only this view held become garbage.
        view = null;
      },
    };
  }

  /**
   * Starts replacing the whole state with an encoded one fed piece by piece: the new tables are
   * built aside while this state keeps answering, and swapped in by `finish()` in one step.
   */
  beginRestore(): StateMachineRestore {
    const kv = new KvTableBuilder();
    const decoder = new SnapshotDecoder({
      kvEntry: (key, record) => kv.addEntry(key, record),
      kvTombstone: (key, index) => kv.addTombstone(key, index),
    });
    let open = true;
    return {
      write: (piece) => {
        if (!open) throw new FsmInvariantError('restore written after it ended');
        decoder.write(piece);
      },
      finish: () => {
        if (!open) throw new FsmInvariantError('restore finished twice');
        const { appliedIndex, kvIndex, events, catalog, sessions, kvRecovery } = decoder.finish();
        open = false;
        this.kv.loadBuilt(kv, kvIndex);
        this.loadSmallTables(events, catalog, sessions, kvRecovery);
        // Snapshots are never taken mid-restore (snapshotBlocker), so the state installed has none.
        this.staged = null;
        this.lastApplied = appliedIndex;
        this.watches.notifyAll(appliedIndex);
        return appliedIndex;
      },
      abort: () => {
        open = false;
      },
    };
  }

  /**
   * Replaces the whole state with a snapshot's. Parses and checks everything first (throws
   * SnapshotFormatError, leaving the state untouched), then wakes every watcher.
   */
  restore(data: Uint8Array): void {
    const restore = this.beginRestore();
    restore.write(data);
    restore.finish();
  }

  private view(): FsmView {
    return { appliedIndex: this.lastApplied, kv: this.kv.view(), events: this.events.dump(), catalog: this.catalog.dump(), sessions: this.sessions.dump(), kvRecovery: this.kvRecovery.dump() };
  }

  /** Replaces every table with the snapshot's (a Raft snapshot install, or a snapshotRestore command). */
  private loadState(state: FsmState): void {
    this.kv.load(state.kv);
    this.loadSmallTables(state.events, state.catalog, state.sessions, state.kvRecovery);
  }

  private loadSmallTables(events: EventsTableDump | undefined, catalog: CatalogTableDump | undefined, sessions: SessionsTableDump | undefined, kvRecovery?: KvRecoveryDump): void {
    this.events.load(events ?? { index: 0, lastLTime: 0, events: [] });
    this.catalog.load(catalog ?? EMPTY_CATALOG_DUMP);
    this.sessions.load(sessions ?? EMPTY_SESSIONS_DUMP);
    this.kvRecovery.load(kvRecovery ?? EMPTY_KV_RECOVERY_DUMP);
  }

  private execute(index: number, command: Command): FsmResult {
    let outcome: KvWriteOutcome;
    switch (command.type) {
      case 'kvSet': {
        const write = { key: command.key, value: parseValue(command.value), flags: parseFlags(command.flags) };
        if (command.nowMs !== undefined) this.sessions.observeTime(command.nowMs);
        if (command.acquire !== undefined) outcome = this.kv.acquire(index, write, command.acquire, this.sessionLookup, command.nowMs);
        else if (command.release !== undefined) outcome = this.kv.release(index, write, command.release);
        else if (command.cas !== undefined) outcome = this.kv.setCas(index, write, command.cas);
        else outcome = this.kv.set(index, write);
        break;
      }
      case 'kvDelete':
        if (command.nowMs !== undefined) this.sessions.observeTime(command.nowMs);
        outcome = this.kv.delete(index, command.key, command.cas);
        break;
      case 'kvDeleteTree':
        if (command.nowMs !== undefined) this.sessions.observeTime(command.nowMs);
        outcome = this.kv.deleteTree(index, command.prefix);
        break;
      case 'kvReapTombstones':
        this.kv.reapTombstones(command.upToIndex);
        outcome = { kind: 'done', result: true, changedKeys: [] };
        break;
      case 'txn':
        return this.applyTxn(index, command);
      case 'eventFire':
        return this.fireEvent(index, command);
      case 'snapshotRestore':
        return this.restoreSnapshotCommand(index, command);
      case 'restoreBegin':
      case 'restoreChunk':
      case 'restoreCommit':
      case 'restoreAbort':
        return this.applyStagedRestore(index, command);
      case 'catalogRegister':
      case 'catalogDeregister':
      case 'catalogCheckStatus':
        return this.applyCatalog(index, command);
      case 'sessionCreate':
      case 'sessionDestroy':
      case 'sessionRenew':
        return this.applySession(index, command);
      case 'kvRecoveryRules':
      case 'kvRecoveryReap':
      case 'kvRecoveryPurge':
        // fsm/state/kv-recovery.ts: no watchers (nothing blocks on retired versions).
        this.lastApplied = index;
        if (command.type === 'kvRecoveryReap') this.sessions.observeTime(command.nowMs);
        return this.kvRecovery.apply(index, command);
      default:
        return assertNever(command);
    }
    this.lastApplied = index;
    if (outcome.kind === 'rejected') return { ok: false, code: outcome.code, error: outcome.error };
    // Last: the state is complete before any watcher looks at it (and a throwing watcher cannot
    // leave the apply half done).
    this.watches.notify('kv', index, outcome.changedKeys);
    return outcome.result;
  }

  // -------------------------------------------------------------------------------------------
  // Transactions, events, snapshot restore (/v1/txn, /v1/event, /v1/snapshot)
  // -------------------------------------------------------------------------------------------

  /** All operations or none; watchers wake once, for every key the transaction changed. */
  private applyTxn(index: number, command: TxnCommand): TxnApplyResult {
    const ops = command.ops.map((op): TxnKvOp => ({
      verb: op.verb as TxnKvVerb,
      key: op.key,
      ...(op.value !== undefined ? { value: parseValue(op.value) } : {}),
      ...(op.flags !== undefined ? { flags: parseFlags(op.flags) } : {}),
      ...(op.index !== undefined ? { index: op.index } : {}),
      ...(op.session !== undefined ? { session: op.session } : {}),
    }));
    if (command.nowMs !== undefined) this.sessions.observeTime(command.nowMs);
    const outcome = applyKvTxn(this.kv, index, ops, this.sessionLookup, command.nowMs);
    this.lastApplied = index;
    this.watches.notify('kv', index, outcome.changedKeys);
    return txnResultJson(outcome);
  }

  private fireEvent(index: number, command: EventFireCommand): EventFireResult {
    const event = this.events.fire(index, {
      proposedId: command.id,
      name: command.name,
      payload: parseValue(command.payload),
      nodeFilter: command.nodeFilter,
      serviceFilter: command.serviceFilter,
      tagFilter: command.tagFilter,
    });
    this.lastApplied = index;
    this.watches.notify('events', index, [command.name]);
    return { kind: 'event', event: userEventJson(event) };
  }

  /**
   * Replaces the whole state with a snapshot's, on every replica at the same log index. The
   * snapshot is parsed and checked completely first: a bad one changes nothing. Its indexes are
   * moved into this log's index space (restore.ts), and every watcher wakes.
   */
  private restoreSnapshotCommand(index: number, command: SnapshotRestoreCommand): ApplyResult {
    this.lastApplied = index;
    let state: FsmState;
    try {
      state = decodeSnapshot(command.state);
    } catch (err) {
      if (err instanceof SnapshotFormatError) return { ok: false, code: 'invalidCommand', error: `snapshotRestore: ${err.message}` };
      throw err;
    }
    this.loadState(stateForRestoreAt(state, index));
    this.watches.notifyAll(index);
    return true;
  }

  /**
   * A staged restore's step (restore-commands.ts). A refused step changes nothing visible; a bad
   * chunk or a failed commit also drops the restore, so every replica ends it at the same entry.
   */
  private applyStagedRestore(index: number, command: RestoreCommand): ApplyResult {
    this.lastApplied = index;
    const staged = this.staged;
    const refuse = (error: string): ApplyError => ({ ok: false, code: 'restoreRejected', error });
    if (command.type === 'restoreBegin') {
      if (staged !== null) return refuse(`a restore is already in progress (${staged.id}, begun at index ${staged.beginIndex})`);
      this.staged = new StagedRestore(command.id, index, command.bytes);
      return true;
    }
    if (staged === null || staged.id !== command.id) {
      return refuse(`restore ${command.id} is not in progress${staged === null ? '' : ` (restore ${staged.id} is)`}`);
    }
    if (command.type === 'restoreAbort') {
      this.staged = null;
      return true;
    }
    try {
      if (command.type === 'restoreChunk') {
        staged.write(command.seq, command.data);
        return true;
      }
      this.staged = null;
      const tables = staged.finish();
      this.kv.loadBuilt(staged.kv, index);
      const small = smallTablesForRestoreAt(tables, index);
      this.loadSmallTables(small.events, small.catalog, small.sessions, small.kvRecovery);
      this.watches.notifyAll(index);
      return true;
    } catch (err) {
      if (!(err instanceof RestoreRejectedError)) throw err;
      this.staged = null;
      return refuse(err.message);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Catalog and health (/v1/catalog, /v1/health, agent endpoints): fsm/state/catalog.ts
  // -------------------------------------------------------------------------------------------

  /**
   * A catalog write. Its result lists the checks that became critical and the checks and nodes it
   * removed (`criticalChecks`, `deregisteredChecks`, `deregisteredNodes`): the sessions bound to
   * them are to be invalidated here, in the same apply, as Consul does in the same transaction.
   */
  private applyCatalog(index: number, command: CatalogCommand): CatalogApplyResult {
    let outcome: CatalogWriteOutcome;
    if (command.type === 'catalogRegister') outcome = this.catalog.register(index, command);
    else if (command.type === 'catalogDeregister') outcome = this.catalog.deregister(index, command);
    else outcome = this.catalog.updateCheckStatus(index, command);
    this.lastApplied = index;
    const result = outcome.result;
    // Sessions bound to a check that turned critical or went away, or to a removed node, are
    // invalidated in the same apply. Their lock-delays run from the command's `nowMs` when it has
    // one, else from the latest proposer time the log has carried (SessionsTable.clockMs).
    const nowMs = 'nowMs' in command && typeof command.nowMs === 'number' ? command.nowMs : undefined;
    if (nowMs !== undefined) this.sessions.observeTime(nowMs);
    const invalidated = result.ok
      ? this.sessions.invalidate(index, { nodes: result.deregisteredNodes, checks: [...result.criticalChecks, ...result.deregisteredChecks] }, this.kv, nowMs ?? this.sessions.clockMs())
      : undefined;
    this.watches.notify('catalog', index, outcome.changedKeys);
    if (invalidated !== undefined) this.notifySessions(index, invalidated);
    return result;
  }

  // -------------------------------------------------------------------------------------------
  // Sessions (/v1/session, KV locks): fsm/state/sessions.ts
  // -------------------------------------------------------------------------------------------

  private applySession(index: number, command: SessionCommand): SessionApplyResult | ApplyError {
    this.lastApplied = index;
    switch (command.type) {
      case 'sessionCreate': {
        if (command.nowMs !== undefined) this.sessions.observeTime(command.nowMs);
        const outcome = this.sessions.create(
          index,
          {
            ID: command.id,
            Name: command.name,
            Node: command.node,
            LockDelay: command.lockDelayNs,
            Behavior: command.behavior,
            TTL: command.ttl,
            NodeChecks: command.nodeChecks,
            ServiceChecks: command.serviceChecks === null ? null : command.serviceChecks.map((c) => ({ ID: c.id, Namespace: c.namespace })),
            Checks: command.checks,
          },
          this.sessionCatalog,
        );
        if (!outcome.ok) return { ok: false, code: 'sessionRejected', error: outcome.error };
        this.notifySessions(index, outcome.change);
        return { kind: 'sessionCreated', id: command.id };
      }
      case 'sessionDestroy': {
        this.sessions.observeTime(command.nowMs);
        const change = this.sessions.destroy(index, command.id, this.kv, command.nowMs, command.ifRenewIndex);
        this.notifySessions(index, change);
        return { kind: 'sessionDestroyed', destroyed: change.sessionKeys.length > 0 };
      }
      case 'sessionRenew': {
        if (command.nowMs !== undefined) this.sessions.observeTime(command.nowMs);
        const session = this.sessions.renew(index, command.id);
        return { kind: 'sessionRenewed', session: session === undefined ? null : sessionJson(session) };
      }
    }
  }

  /** Wakes the watchers of what a session write changed: its sessions, then the KV keys it released. */
  private notifySessions(index: number, change: SessionsChange): void {
    this.watches.notify('sessions', index, change.sessionKeys);
    this.watches.notify('kv', index, change.kvKeys);
  }

  private checkNextIndex(index: number): void {
    // Raft hands over every committed entry exactly once, in order: a gap would mean a lost
    // write (this replica diverges), a repeat a write applied twice.
    if (index !== this.lastApplied + 1) {
      throw new FsmInvariantError(`apply at index ${index} after index ${this.lastApplied}: entries must be applied once each, in order`);
    }
  }
}

function assertNever(command: never): never {
  throw new FsmInvariantError(`unhandled command ${JSON.stringify(command)}`);
}
