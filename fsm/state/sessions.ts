// The sessions table: Consul's sessions and the lock-delays they leave behind, applied
// deterministically.
//
// Rules follow Consul's state store (agent/consul/state/session.go, session_ce.go), its RPC endpoint
// (agent/consul/session_endpoint.go), session_ttl.go and the HTTP API
// (developer.hashicorp.com/consul/api-docs/session); fsm/README.md lists them with their sources.
//
// - A session belongs to a node and may be bound to health checks of that node (NodeChecks,
//   ServiceChecks, and the legacy Checks). Creating one needs the node and every bound check to
//   exist, and no bound check may be critical.
// - It is invalidated (destroyed) explicitly, when its TTL runs out (the leader proposes that), when
//   a bound check turns critical or is deregistered, and when its node is deregistered.
// - Invalidation releases every KV lock it holds (Behavior "release": Session cleared, LockIndex
//   kept) or deletes the keys (Behavior "delete"), and puts each key under lock-delay: no session
//   may acquire it until LockDelay (at most 60 s) has passed.
//
// Time: lock-delay needs wall time, which the FSM may not read. Every command that can invalidate a
// session or acquire a lock carries the proposer's `nowMs`; the table stores absolute expiry times
// and compares them with the command's `nowMs`, so every replica decides the same. Consul instead
// keeps lock-delays out of Raft, in each server's memory, and checks them before proposing; here
// they are part of the replicated state and of snapshots.
//
// TTL renewals are replicated too (sessionRenew), but only as the index of the last renewal: the
// leader's timer (server/session-ttl.ts) measures the TTL on its own clock from the moment it sees a
// new renewal index, and its expiry command names that index, so a renewal that commits first wins.

import type { KvTable } from './kv.ts';

/** Consul's structs.SerfCheckID: the default check every session is bound to. */
export const SERF_CHECK_ID = 'serfHealth';
/** Consul's default LockDelay (agent/session_endpoint.go), in nanoseconds like Consul's JSON. */
export const DEFAULT_LOCK_DELAY_NS = 15_000_000_000;
/** Consul's structs.MaxLockDelay: longer lock delays are applied as 60 s. */
export const MAX_LOCK_DELAY_NS = 60_000_000_000;
/** Consul's structs.SessionTTLMax (24h = 86400 s). The minimum is configurable (session_ttl_min). */
export const SESSION_TTL_MAX_NS = 86_400_000_000_000;
/** Consul's default session_ttl_min. */
export const DEFAULT_SESSION_TTL_MIN_NS = 10_000_000_000;
/** Consul's structs.SessionTTLMultiplier: a session is invalidated TTL × 2 after its last renewal. */
export const SESSION_TTL_MULTIPLIER = 2;

export type SessionBehavior = 'release' | 'delete';

/** Consul's structs.ServiceCheck (Namespace is Enterprise-only and always "" here). */
export interface ServiceCheckRef {
  readonly ID: string;
  readonly Namespace: string;
}

/**
 * A session, with Consul's field names (the server serializes it with sessionJson). Entries are
 * never mutated: readers may hold on to them.
 */
export interface Session {
  readonly ID: string;
  readonly Name: string;
  readonly Node: string;
  /** Nanoseconds, as Consul's JSON shows it. */
  readonly LockDelay: number;
  readonly Behavior: SessionBehavior;
  /** The TTL as the client wrote it ("30s", "15.0s"); "" for none. */
  readonly TTL: string;
  /** null where Consul's Go slice would be nil (JSON null). */
  readonly NodeChecks: readonly string[] | null;
  readonly ServiceChecks: readonly ServiceCheckRef[] | null;
  /** Deprecated since Consul 1.7; omitted from JSON when empty. */
  readonly Checks: readonly string[] | null;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

/** What a create supplies: everything but the indexes. */
export type SessionSpec = Omit<Session, 'CreateIndex' | 'ModifyIndex'>;

/** A session as the HTTP API answers it (Consul's field order; Checks only when non-empty). */
export type SessionJson = Record<string, unknown>;

export function sessionJson(s: Session): SessionJson {
  return {
    ID: s.ID,
    Name: s.Name,
    Node: s.Node,
    LockDelay: s.LockDelay,
    Behavior: s.Behavior,
    TTL: s.TTL,
    NodeChecks: s.NodeChecks,
    ServiceChecks: s.ServiceChecks,
    ...(s.Checks !== null && s.Checks.length > 0 ? { Checks: s.Checks } : {}),
    CreateIndex: s.CreateIndex,
    ModifyIndex: s.ModifyIndex,
  };
}

/** Consul's Session.CheckIDs(): the legacy Checks, then NodeChecks, then the service checks' IDs. */
export function sessionCheckIds(s: SessionSpec): string[] {
  return [...(s.Checks ?? []), ...(s.NodeChecks ?? []), ...(s.ServiceChecks ?? []).map((c) => c.ID)];
}

/**
 * What sessions need from the catalog: whether a node exists and the status of its checks. The
 * catalog table (catalog.ts) implements it.
 */
export interface SessionCatalogLookup {
  nodeExists(node: string): boolean;
  /** The check's status ("passing", "warning", "critical", ...), or undefined if it is not registered. */
  checkStatus(node: string, checkId: string): string | undefined;
}

/** For tables used without a catalog (tests): every node exists and every check passes. */
export const ANY_NODE: SessionCatalogLookup = { nodeExists: () => true, checkStatus: () => 'passing' };

/** A (node, check) pair whose sessions must be invalidated. */
export interface CheckRef {
  readonly node: string;
  readonly checkId: string;
}

/** What an invalidation changed: session watch keys and KV keys, to wake their watchers. */
export interface SessionsChange {
  /** Session ids and node watch keys (sessionNodeWatchKey). */
  readonly sessionKeys: readonly string[];
  readonly kvKeys: readonly string[];
}

const NO_CHANGE: SessionsChange = { sessionKeys: [], kvKeys: [] };

export type SessionCreateOutcome = { readonly ok: true; readonly change: SessionsChange } | { readonly ok: false; readonly error: string };

/** The table's full contents, for snapshots, in ID order (lock-delays in key order). */
export interface SessionsTableDump {
  readonly index: number;
  /** The latest proposer time any command carried (SessionsTable.clockMs). */
  readonly clockMs: number;
  readonly sessions: readonly { readonly session: Session; readonly renewIndex: number }[];
  readonly lockDelays: readonly { readonly key: string; readonly untilMs: number }[];
}

export const EMPTY_SESSIONS_DUMP: SessionsTableDump = { index: 0, clockMs: 0, sessions: [], lockDelays: [] };

/** What a session command answers through `propose` (JSON-serialisable). */
export type SessionApplyResult =
  | { readonly kind: 'sessionCreated'; readonly id: string }
  /** Consul answers true whether or not the session existed; `destroyed` says which. */
  | { readonly kind: 'sessionDestroyed'; readonly destroyed: boolean }
  /** null: no such session (HTTP 404). */
  | { readonly kind: 'sessionRenewed'; readonly session: SessionJson | null };

/**
 * The key under which `/v1/session/node/:node` watches (table 'sessions'). Session ids are UUIDs
 * and never contain '/', so these cannot collide with them. Node names match case-insensitively,
 * as in Consul's node index.
 */
export function sessionNodeWatchKey(node: string): string {
  return `node/${node.toLowerCase()}`;
}

function checkKey(node: string, checkId: string): string {
  // Consul's session_checks index lowercases both parts; NUL cannot occur in either.
  return `${node.toLowerCase()}\u0000${checkId.toLowerCase()}`;
}

function addTo(map: Map<string, Set<string>>, key: string, id: string): void {
  let set = map.get(key);
  if (set === undefined) {
    set = new Set();
    map.set(key, set);
  }
  set.add(id);
}

function removeFrom(map: Map<string, Set<string>>, key: string, id: string): void {
  const set = map.get(key);
  if (set === undefined) return;
  set.delete(id);
  if (set.size === 0) map.delete(key);
}

const byId = (a: Session, b: Session): number => (a.ID < b.ID ? -1 : a.ID > b.ID ? 1 : 0);

export class SessionsTable {
  private readonly sessionsById = new Map<string, Session>();
  /** Index of each session's last create or renewal: what the leader's TTL timer watches. */
  private readonly renewIndexById = new Map<string, number>();
  /** Lowercased node name → session ids. */
  private readonly idsByNode = new Map<string, Set<string>>();
  /** checkKey(node, check) → ids of the sessions bound to it. */
  private readonly idsByCheck = new Map<string, Set<string>>();
  /** Key → the time (ms, proposer's clock) until which no session may acquire it. */
  private readonly lockDelayUntilByKey = new Map<string, number>();
  /** Index of the last create or destroy (renewals do not change it, as in Consul). */
  private tableIndex = 0;
  /** The latest proposer time (ms) any applied command carried: the clock of commands without one. */
  private latestNowMs = 0;

  index(): number {
    return this.tableIndex;
  }

  get size(): number {
    return this.sessionsById.size;
  }

  get(id: string): Session | undefined {
    return this.sessionsById.get(id);
  }

  /** Every session, in ID order (Consul's id index). */
  list(): Session[] {
    return [...this.sessionsById.values()].sort(byId);
  }

  /** Every session, in no particular order (for scans that do not need ID order). */
  values(): IterableIterator<Session> {
    return this.sessionsById.values();
  }

  /** The sessions of a node (matched case-insensitively), in ID order. */
  listByNode(node: string): Session[] {
    const ids = this.idsByNode.get(node.toLowerCase());
    return ids ? [...ids].map((id) => this.sessionsById.get(id)!).sort(byId) : [];
  }

  /** The index of the session's last create or renewal; undefined if it does not exist. */
  renewIndex(id: string): number | undefined {
    return this.renewIndexById.get(id);
  }

  /** SessionLookup (fsm/state/kv.ts): whether a lock may be acquired with this session. */
  sessionExists(sessionId: string): boolean {
    return this.sessionsById.has(sessionId);
  }

  /** SessionLookup: whether `key` is still under lock-delay at `nowMs`. */
  lockDelayed(key: string, nowMs: number): boolean {
    const until = this.lockDelayUntilByKey.get(key);
    return until !== undefined && until > nowMs;
  }

  /** When the key's lock-delay ends (ms), if one was ever set and not yet pruned. */
  lockDelayUntil(key: string): number | undefined {
    return this.lockDelayUntilByKey.get(key);
  }

  get lockDelayCount(): number {
    return this.lockDelayUntilByKey.size;
  }

  /**
   * The latest proposer time the log has carried (ms): the clock for invalidations caused by
   * commands that carry none (catalog writes). Derived from the log, so identical on every replica.
   */
  clockMs(): number {
    return this.latestNowMs;
  }

  /** Records a command's proposer time (the FSM calls this for every command that carries one). */
  observeTime(nowMs: number): void {
    if (nowMs > this.latestNowMs) this.latestNowMs = nowMs;
  }

  // -------------------------------------------------------------------------------------------
  // Writes. Only the FSM calls these, with the Raft index of the entry it is applying.
  // -------------------------------------------------------------------------------------------

  /**
   * Creates a session (sessionCreateTxn): the node must exist, and every bound check must exist on
   * it and not be critical. Errors carry Consul's texts. The id comes from the proposer.
   */
  create(index: number, spec: SessionSpec, catalog: SessionCatalogLookup): SessionCreateOutcome {
    if (this.sessionsById.has(spec.ID)) return { ok: false, error: `Session ID '${spec.ID}' is already in use` };
    if (!catalog.nodeExists(spec.Node)) return { ok: false, error: 'Missing node registration' };
    for (const checkId of sessionCheckIds(spec)) {
      const status = catalog.checkStatus(spec.Node, checkId);
      if (status === undefined) return { ok: false, error: `Missing check '${checkId}' registration` };
      if (status === 'critical') return { ok: false, error: `Check '${checkId}' is in critical state` };
    }
    const session: Session = { ...spec, CreateIndex: index, ModifyIndex: index };
    this.insert(session, index);
    this.tableIndex = index;
    return { ok: true, change: { sessionKeys: [session.ID, sessionNodeWatchKey(session.Node)], kvKeys: [] } };
  }

  /**
   * Records a renewal (Consul's Session.Renew, which only resets the leader's timer): nothing a
   * reader sees changes, not even an index. Answers the session, or undefined if it does not exist.
   */
  renew(index: number, id: string): Session | undefined {
    const session = this.sessionsById.get(id);
    if (session !== undefined) this.renewIndexById.set(id, index);
    return session;
  }

  /**
   * Destroys a session (deleteSessionTxn): releases or deletes the keys it locks, puts them under
   * lock-delay from `nowMs`, and forgets its check bindings. A missing session changes nothing.
   * With `ifRenewIndex` (a TTL expiry), only if the session was not renewed since that index.
   */
  destroy(index: number, id: string, kv: KvTable, nowMs: number, ifRenewIndex?: number): SessionsChange {
    const session = this.sessionsById.get(id);
    if (session === undefined) return NO_CHANGE;
    if (ifRenewIndex !== undefined && this.renewIndexById.get(id) !== ifRenewIndex) return NO_CHANGE;
    this.pruneLockDelays(nowMs);
    const kvKeys = this.invalidateLocks(index, session, kv, nowMs);
    this.remove(session);
    this.tableIndex = index;
    return { sessionKeys: [id, sessionNodeWatchKey(session.Node)], kvKeys };
  }

  /**
   * Invalidates every session bound to one of `checks` (a check turned critical or was
   * deregistered) or belonging to one of `nodes` (the node was deregistered), in ID order.
   */
  invalidate(index: number, bound: { readonly nodes?: readonly string[]; readonly checks?: readonly CheckRef[] }, kv: KvTable, nowMs: number): SessionsChange {
    const ids = new Set<string>();
    for (const node of bound.nodes ?? []) for (const id of this.idsByNode.get(node.toLowerCase()) ?? []) ids.add(id);
    for (const check of bound.checks ?? []) for (const id of this.idsByCheck.get(checkKey(check.node, check.checkId)) ?? []) ids.add(id);
    if (ids.size === 0) return NO_CHANGE;
    const sessionKeys: string[] = [];
    const kvKeys: string[] = [];
    for (const id of [...ids].sort()) {
      const change = this.destroy(index, id, kv, nowMs);
      sessionKeys.push(...change.sessionKeys);
      kvKeys.push(...change.kvKeys);
    }
    return { sessionKeys, kvKeys };
  }

  /** The ids of the sessions bound to a check (for the catalog side and tests), sorted. */
  sessionsBoundTo(node: string, checkId: string): string[] {
    return [...(this.idsByCheck.get(checkKey(node, checkId)) ?? [])].sort();
  }

  // -------------------------------------------------------------------------------------------
  // Snapshots.
  // -------------------------------------------------------------------------------------------

  dump(): SessionsTableDump {
    return {
      index: this.tableIndex,
      clockMs: this.latestNowMs,
      sessions: this.list().map((session) => ({ session, renewIndex: this.renewIndexById.get(session.ID)! })),
      lockDelays: [...this.lockDelayUntilByKey.entries()]
        .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0))
        .map(([key, untilMs]) => ({ key, untilMs })),
    };
  }

  /** Replaces the whole contents. */
  load(dump: SessionsTableDump): void {
    this.sessionsById.clear();
    this.renewIndexById.clear();
    this.idsByNode.clear();
    this.idsByCheck.clear();
    this.lockDelayUntilByKey.clear();
    for (const { session, renewIndex } of dump.sessions) this.insert(session, renewIndex);
    for (const { key, untilMs } of dump.lockDelays) this.lockDelayUntilByKey.set(key, untilMs);
    this.tableIndex = dump.index;
    this.latestNowMs = dump.clockMs;
  }

  // -------------------------------------------------------------------------------------------

  private insert(session: Session, renewIndex: number): void {
    this.sessionsById.set(session.ID, session);
    this.renewIndexById.set(session.ID, renewIndex);
    addTo(this.idsByNode, session.Node.toLowerCase(), session.ID);
    for (const checkId of sessionCheckIds(session)) addTo(this.idsByCheck, checkKey(session.Node, checkId), session.ID);
  }

  private remove(session: Session): void {
    this.sessionsById.delete(session.ID);
    this.renewIndexById.delete(session.ID);
    removeFrom(this.idsByNode, session.Node.toLowerCase(), session.ID);
    for (const checkId of sessionCheckIds(session)) removeFrom(this.idsByCheck, checkKey(session.Node, checkId), session.ID);
  }

  /** Releases or deletes the session's locks (its Behavior) and starts their lock-delay. */
  private invalidateLocks(index: number, session: Session, kv: KvTable, nowMs: number): string[] {
    const keys = kv.keysLockedBy(session.ID);
    const delayNs = Math.min(session.LockDelay, MAX_LOCK_DELAY_NS);
    const changed: string[] = [];
    for (const key of keys) {
      if (session.Behavior === 'delete') {
        changed.push(...kv.delete(index, key).changedKeys);
      } else {
        const entry = kv.get(key)!;
        const outcome = kv.release(index, { key, value: entry.Value, flags: entry.Flags }, session.ID);
        if (outcome.kind === 'done') changed.push(...outcome.changedKeys);
      }
      // Whole milliseconds, rounded up: a lock-delay is never shorter than asked.
      if (delayNs > 0) this.lockDelayUntilByKey.set(key, nowMs + Math.ceil(delayNs / 1_000_000));
    }
    return changed;
  }

  /** Forgets lock-delays that ended at or before `nowMs` (they can no longer refuse anything). */
  private pruneLockDelays(nowMs: number): void {
    for (const [key, until] of this.lockDelayUntilByKey) if (until <= nowMs) this.lockDelayUntilByKey.delete(key);
  }
}
