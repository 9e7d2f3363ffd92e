// The agent core both processes run (Consul's agent/local/state.go): inside every server, services
// and checks registered through /v1/agent/* live on the server's own node and reach the catalog
// through Raft; a client agent (agent/) runs the same core against the servers' RPC.
//
// - Local state is the source of truth, as in Consul's agent/local: every change is written to the
//   catalog at once, and an anti-entropy round (every `syncIntervalMs`, and after a failed write)
//   repairs drift both ways: local entries missing or stale in the catalog are registered, entries on
//   this node that the agent does not know are deregistered (except the "consul" service and the
//   serfHealth check, which the leader keeps; server/server-registration.ts).
// - Definitions (with check statuses) persist in <data dir>/agent-local.json, written atomically
//   (temp file, fsync, rename, directory fsync) before a registration is acknowledged, and are
//   registered again after a restart. Writes are a group commit: changes made during a write share
//   the next one (persist()).
// - TTL checks run here, on the server that registered them: time stays out of the FSM. A TTL that
//   runs out sets the check critical with Consul's output ("TTL expired ..."). Other check types are
//   stored and reported with their registered status but not executed (agent mode runs them).
// - DeregisterCriticalServiceAfter: a service whose check has been critical that long is removed
//   (at least `deregisterMinMs` after, checked every `reapIntervalMs`: Consul's 1 minute and 30 s).
// - Maintenance mode is Consul's `_service_maintenance:<id>` critical check.
// - The catalog is reached through a LocalAgentBackend (backend.ts): on a server, Raft proposals and
//   the local FSM (after a read barrier); in agent mode (agent/), RPCs to a server (docs/adr/0013-agent-mode.md).
// - Refusals are KonsulErrors with Consul's texts (errors.ts); the HTTP platform picks the status.
//   Agent mode also turns on: registering the node itself (`ownsNode`), coalescing check status
//   changes into batches (`statusCoalesceMs`: a flap that returns to the synced status sends
//   nothing), and check runners (`checkHooks`, results through `reportCheckResult`).
// - The full-sync period grows with the catalog's node count as Consul's aeScale does, with a
//   random stagger so that agents restarted together do not sync together.
import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { validateCommand } from '../../fsm/commands.ts';
import {
  checkCheckSpec,
  checkServiceSpec,
  type CatalogCheckSpec,
  type CatalogCommand,
  type CatalogNodeSpec,
  type CatalogServiceSpec,
  type CheckStatus,
} from '../../fsm/state/catalog-commands.ts';
import { CONSUL_SERVICE_ID, SERF_CHECK_ID, type CatalogCheck, type CatalogTable } from '../../fsm/state/catalog.ts';
import { fsmBackend, type LocalAgentBackend } from './backend.ts';
import { InvalidAgentRequestError, NoTtlError, UnknownAgentEntryError, unknownCheck, unknownService } from './errors.ts';
import { catalogNodeSpec } from './node-registration.ts';

export { fsmBackend, type LocalAgentBackend, type NodeCatalogState } from './backend.ts';

export const AGENT_STATE_FILE = 'agent-local.json';
/** Consul's structs.ServiceMaintPrefix and the notes of a maintenance check without a reason. */
export const SERVICE_MAINT_PREFIX = '_service_maintenance:';
export const DEFAULT_SERVICE_MAINT_REASON = 'Maintenance mode is enabled for this service, but no reason was provided. This is a default message.';
/** Consul's default OutputMaxSize for check output. */
export const CHECK_OUTPUT_MAX_BYTES = 4096;

/** A check as the agent keeps it: the catalog spec plus how it runs. */
export interface LocalCheck {
  readonly spec: CatalogCheckSpec;
  /** > 0 for a TTL check. */
  readonly ttlMs: number;
  /** > 0: deregister the check's service after it has been critical this long. */
  readonly deregisterCriticalAfterMs: number;
  /** The registration named a Status (else an existing check keeps its own). Not persisted. */
  readonly explicitStatus?: boolean;
  /** SuccessBeforePassing, FailuresBeforeWarning, FailuresBeforeCritical when set (check runners use them). */
  readonly thresholds?: Readonly<Record<string, number>>;
}

/** Consul's aeScale: the full-sync period stays as configured up to 128 nodes, then grows with log2(nodes). */
export function aeScaledIntervalMs(intervalMs: number, nodeCount: number): number {
  const threshold = 128;
  if (nodeCount <= threshold) return intervalMs;
  return intervalMs * (1 + Math.ceil(Math.log2(nodeCount) - Math.log2(threshold)));
}

/** What runs checks other than TTL (agent mode's check runner). */
export interface CheckHooks {
  /** A check was added or its definition replaced (also called for every loaded check at start). */
  added(check: LocalCheck): void;
  removed(checkId: string): void;
}

export interface LocalAgentOptions {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly dataDir: string;
  /** The address this node is registered with (see server/server-registration.ts). */
  readonly nodeAddress: () => string;
  /** How the catalog is reached; without it, `catalog`, `propose` and `readBarrier` (a server's FSM). */
  readonly backend?: LocalAgentBackend;
  readonly catalog?: CatalogTable;
  readonly propose?: (command: Uint8Array) => Promise<unknown>;
  /** Brings the local catalog up to date before an anti-entropy round compares against it. */
  readonly readBarrier?: () => Promise<void>;
  /** Register the node itself when the catalog lacks it or holds it differently (agent mode). */
  readonly ownsNode?: boolean;
  /** > 0: check status changes are sent after this delay, batched; 0: each at once (servers). */
  readonly statusCoalesceMs?: number;
  /** Runs checks other than TTL; their results come back through reportCheckResult. */
  readonly checkHooks?: CheckHooks;
  /** Refuses a check this agent cannot run (throws a KonsulError), before anything changes. */
  readonly validateCheck?: (check: LocalCheck) => void;
  /** A random share (0..1) of the full-sync period added to each wait; default 0.1. */
  readonly syncStagger?: () => number;
  /** Called after every successful full sync (tests, status pages). */
  readonly onSynced?: () => void;
  readonly syncIntervalMs?: number;
  readonly reapIntervalMs?: number;
  readonly deregisterMinMs?: number;
  readonly log?: (level: 'warn' | 'info', message: string) => void;
}

interface PersistedState {
  readonly version: 1;
  readonly services: CatalogServiceSpec[];
  readonly checks: { spec: CatalogCheckSpec; ttlMs: number; deregisterCriticalAfterMs: number; thresholds?: Record<string, number> }[];
}

export class LocalAgent {
  private readonly options: LocalAgentOptions;
  private readonly services = new Map<string, CatalogServiceSpec>();
  private readonly checks = new Map<string, LocalCheck>();
  private readonly ttlTimers = new Map<string, NodeJS.Timeout>();
  /** The output a TTL check last got, kept for the expiry message. */
  private readonly lastOutput = new Map<string, string>();
  /** When each check became critical (local time); absent while not critical. */
  private readonly criticalSince = new Map<string, number>();
  private readonly backend: LocalAgentBackend;
  /** Status changes waiting for the coalescing delay, by folded check ID. */
  private readonly pendingStatus = new Map<string, { checkId: string; status: CheckStatus; output: string }>();
  /** What the catalog was last seen or told to hold for each check's status and output. */
  private readonly syncedStatus = new Map<string, string>();
  private flushTimer: NodeJS.Timeout | null = null;
  private nodeCount = 1;
  private lastSyncOkMs = 0;
  private syncTimer: NodeJS.Timeout | null = null;
  private reapTimer: NodeJS.Timeout | null = null;
  /** The state-file write in progress (one at a time), or null. */
  private persisting: Promise<void> | null = null;
  /** Changes made since the in-progress write took its snapshot: their waiters, for the next write. */
  private persistPending: PersistBatch | null = null;
  private persistWrites = 0;
  private persistChanges = 0;
  private syncing: Promise<void> | null = null;
  private stopped = false;

  constructor(options: LocalAgentOptions) {
    this.options = options;
    if (options.backend) this.backend = options.backend;
    else if (options.catalog && options.propose && options.readBarrier) this.backend = fsmBackend(options.catalog, options.propose, options.readBarrier);
    else throw new Error('LocalAgent needs a backend, or catalog, propose and readBarrier');
    this.load();
  }

  /** Services and checks known locally (for status output). */
  counts(): { services: number; checks: number } {
    return { services: this.services.size, checks: this.checks.size };
  }

  /** When the last full sync succeeded (0 = never). */
  lastSyncMs(): number {
    return this.lastSyncOkMs;
  }

  /** Starts the TTL timers and the anti-entropy and reaper loops; the first sync runs at once. */
  start(): void {
    for (const check of this.checks.values()) this.resetTtl(check);
    const now = Date.now();
    for (const check of this.checks.values()) if (check.spec.Status === 'critical') this.criticalSince.set(fold(check.spec.CheckID), now);
    for (const check of this.checks.values()) this.options.checkHooks?.added(check);
    this.scheduleSync();
    this.reapTimer = setInterval(() => void this.reapCritical(Date.now()), this.options.reapIntervalMs ?? 30_000);
    this.reapTimer.unref();
    void this.syncNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearTimeout(this.syncTimer);
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.reapTimer) clearInterval(this.reapTimer);
    for (const timer of this.ttlTimers.values()) clearTimeout(timer);
    this.ttlTimers.clear();
    await this.persistIdle();
  }

  /**
   * State-file writes so far (`writes`) and the changes they covered (`changes`): a write covers
   * every change made while the previous one was in flight (tests, status pages).
   */
  persistStats(): { writes: number; changes: number } {
    return { writes: this.persistWrites, changes: this.persistChanges };
  }

  // -------------------------------------------------------------------------------------------
  // Reads (/v1/agent/services, /v1/agent/checks)
  // -------------------------------------------------------------------------------------------

  listServices(): CatalogServiceSpec[] {
    return [...this.services.values()].sort((a, b) => compare(fold(a.ID), fold(b.ID)));
  }

  getService(id: string): CatalogServiceSpec | undefined {
    return this.services.get(fold(id));
  }

  /** The checks as HealthChecks (Consul's /v1/agent/checks values, without indexes). */
  listChecks(): CatalogCheck[] {
    return [...this.checks.values()].sort((a, b) => compare(fold(a.spec.CheckID), fold(b.spec.CheckID))).map((c) => this.asHealthCheck(c.spec));
  }

  getCheck(id: string): LocalCheck | undefined {
    return this.checks.get(fold(id));
  }

  // -------------------------------------------------------------------------------------------
  // Writes
  // -------------------------------------------------------------------------------------------

  /**
   * Adds or replaces a service and its checks. An existing check keeps its status when the new
   * definition does not set one (Consul restores a TTL check's persisted state the same way).
   * `replaceExistingChecks` removes the service's other checks.
   */
  async registerService(spec: CatalogServiceSpec, checks: readonly LocalCheck[], replaceExistingChecks: boolean): Promise<void> {
    // Everything is checked before the local state changes: a refused registration leaves no trace.
    const problem = checkServiceSpec(spec);
    if (problem) throw new InvalidAgentRequestError(`Invalid service: ${problem}`);
    for (const check of checks) {
      const checkProblem = checkCheckSpec(check.spec);
      if (checkProblem) throw new InvalidAgentRequestError(`Invalid check: ${checkProblem}`);
      this.options.validateCheck?.(check);
    }
    this.checkCommand({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, service: spec, checks: checks.map((c) => c.spec) });
    const id = fold(spec.ID);
    this.services.set(id, spec);
    const removed: string[] = [];
    if (replaceExistingChecks) {
      const keep = new Set(checks.map((c) => fold(c.spec.CheckID)));
      for (const [key, check] of this.checks) {
        if (fold(check.spec.ServiceID) === id && !keep.has(key)) {
          this.dropCheck(key);
          removed.push(check.spec.CheckID);
        }
      }
    }
    for (const check of checks) this.putCheck(check);
    await this.persist();
    await this.write({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, service: spec, checks: this.checksOf(id) });
    for (const checkId of removed) await this.write({ type: 'catalogDeregister', node: this.options.nodeName, checkId });
  }

  /** Removes a service and its checks (404 with Consul's text when unknown). */
  async deregisterService(serviceId: string): Promise<void> {
    const id = fold(serviceId);
    const service = this.services.get(id);
    if (service === undefined) throw unknownService(serviceId);
    this.services.delete(id);
    for (const [key, check] of [...this.checks]) if (fold(check.spec.ServiceID) === id) this.dropCheck(key);
    await this.persist();
    await this.write({ type: 'catalogDeregister', node: this.options.nodeName, serviceId: service.ID });
  }

  /** Adds or replaces a check; a service-level check needs its service (404 otherwise). */
  async registerCheck(check: LocalCheck): Promise<void> {
    const problem = checkCheckSpec(check.spec);
    if (problem) throw new InvalidAgentRequestError(`Invalid check: ${problem}`);
    this.options.validateCheck?.(check);
    let spec = check.spec;
    if (spec.ServiceID !== '') {
      const service = this.services.get(fold(spec.ServiceID));
      if (service === undefined) throw new UnknownAgentEntryError(`ServiceID ${JSON.stringify(spec.ServiceID)} does not exist`);
      spec = { ...spec, ServiceID: service.ID };
    }
    this.putCheck({ ...check, spec });
    await this.persist();
    await this.write({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, checks: [this.checks.get(fold(spec.CheckID))!.spec] });
  }

  /** Removes a check (404 with Consul's text when unknown). */
  async deregisterCheck(checkId: string): Promise<void> {
    const check = this.checks.get(fold(checkId));
    if (check === undefined) throw unknownCheck(checkId);
    this.dropCheck(fold(checkId));
    await this.persist();
    await this.write({ type: 'catalogDeregister', node: this.options.nodeName, checkId: check.spec.CheckID });
  }

  /**
   * /v1/agent/check/pass|warn|fail|update: sets a TTL check's status and restarts its TTL. Unknown
   * checks are 404, checks without a TTL 500, with Consul's texts.
   */
  async updateTtl(checkId: string, status: CheckStatus, output: string): Promise<void> {
    const check = this.checks.get(fold(checkId));
    if (check === undefined) throw unknownCheck(checkId);
    if (check.ttlMs <= 0) throw new NoTtlError(`CheckID ${JSON.stringify(checkId)} does not have associated TTL`);
    const captured = truncateOutput(output);
    this.lastOutput.set(fold(checkId), captured);
    this.resetTtl(check);
    await this.setStatus(check.spec.CheckID, status, captured);
  }

  /** Consul's EnableServiceMaintenance / DisableServiceMaintenance. */
  async setServiceMaintenance(serviceId: string, enable: boolean, reason: string): Promise<void> {
    const service = this.services.get(fold(serviceId));
    if (service === undefined) throw new UnknownAgentEntryError(`No service registered with ID ${JSON.stringify(serviceId)}`);
    const checkId = `${SERVICE_MAINT_PREFIX}${service.ID}`;
    const existing = this.checks.get(fold(checkId));
    if (enable) {
      if (existing !== undefined) return;
      await this.registerCheck({
        spec: {
          CheckID: checkId,
          Name: 'Service Maintenance Mode',
          Status: 'critical',
          Notes: reason === '' ? DEFAULT_SERVICE_MAINT_REASON : reason,
          Output: '',
          ServiceID: service.ID,
          Type: 'maintenance',
          Interval: '',
          Timeout: '',
          Definition: {},
        },
        ttlMs: 0,
        deregisterCriticalAfterMs: 0,
        explicitStatus: true,
      });
    } else if (existing !== undefined) {
      await this.deregisterCheck(checkId);
    }
  }

  // -------------------------------------------------------------------------------------------
  // Anti-entropy, TTLs, critical reaping
  // -------------------------------------------------------------------------------------------

  /** One anti-entropy round (rounds do not overlap; a caller during a round waits for it). */
  syncNow(): Promise<void> {
    this.syncing ??= this.sync().finally(() => {
      this.syncing = null;
    });
    return this.syncing;
  }

  /** Full syncs every (aeScaled) interval plus a random stagger; a sync due while one runs waits for it. */
  private scheduleSync(): void {
    if (this.stopped) return;
    const base = aeScaledIntervalMs(this.options.syncIntervalMs ?? 10_000, this.nodeCount);
    const stagger = (this.options.syncStagger ?? (() => Math.random() * 0.1))();
    this.syncTimer = setTimeout(() => {
      void this.syncNow().finally(() => this.scheduleSync());
    }, Math.round(base * (1 + stagger)));
    this.syncTimer.unref();
  }

  private async sync(): Promise<void> {
    if (this.stopped) return;
    const { nodeName } = this.options;
    try {
      const state = await this.backend.nodeState(nodeName);
      this.nodeCount = Math.max(1, state.nodeCount);
      const catalogServices = new Map(state.services.map((s) => [fold(s.ID), s]));
      const catalogChecks = new Map(state.checks.map((c) => [fold(c.CheckID), c]));
      for (const c of state.checks) this.syncedStatus.set(fold(c.CheckID), statusKey(c.Status, c.Output));
      const batch: CatalogCommand[] = [];
      // The node itself, when this agent owns it (agent mode; a server's node is the leader's).
      if (this.options.ownsNode && (state.node === null || !sameNodeSpec(state.node, this.nodeSpec()))) {
        batch.push({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, checks: [] });
      }
      // Local services (with their checks) that the catalog lacks or holds differently.
      for (const [id, service] of this.services) {
        const inCatalog = catalogServices.get(id);
        const checks = this.checksOf(id);
        const stale = inCatalog === undefined || !sameServiceSpec(inCatalog, service) || checks.some((c) => !checkInSync(catalogChecks.get(fold(c.CheckID)), c));
        if (stale) batch.push({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, service, checks });
      }
      const nodeChecks = [...this.checks.values()].filter((c) => c.spec.ServiceID === '').map((c) => c.spec);
      const staleNodeChecks = nodeChecks.filter((c) => !checkInSync(catalogChecks.get(fold(c.CheckID)), c));
      if (staleNodeChecks.length > 0) batch.push({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, checks: staleNodeChecks });
      // Entries on this node that the agent does not know (the leader's own registrations excepted).
      for (const service of state.services) {
        if (service.ID === CONSUL_SERVICE_ID || this.services.has(fold(service.ID))) continue;
        batch.push({ type: 'catalogDeregister', node: nodeName, serviceId: service.ID });
      }
      for (const check of state.checks) {
        if (check.CheckID === SERF_CHECK_ID || check.ServiceID === CONSUL_SERVICE_ID || this.checks.has(fold(check.CheckID))) continue;
        batch.push({ type: 'catalogDeregister', node: nodeName, checkId: check.CheckID });
      }
      if (batch.length > 0) await this.writeBatch(batch);
      this.lastSyncOkMs = Date.now();
      this.options.onSynced?.();
    } catch (err) {
      // Nothing local to sync (a fresh server waiting for its cluster): no need to warn.
      const idle = this.services.size === 0 && this.checks.size === 0;
      if (!this.stopped) this.options.log?.(idle ? 'info' : 'warn', `agent: anti-entropy sync failed (retrying): ${(err as Error).message}`);
    }
  }

  /** Removes services whose check has been critical longer than its DeregisterCriticalServiceAfter. */
  async reapCritical(nowMs: number): Promise<void> {
    const minimum = this.options.deregisterMinMs ?? 60_000;
    for (const check of [...this.checks.values()]) {
      if (check.deregisterCriticalAfterMs <= 0 || check.spec.ServiceID === '') continue;
      const since = this.criticalSince.get(fold(check.spec.CheckID));
      if (since === undefined || nowMs - since < Math.max(check.deregisterCriticalAfterMs, minimum)) continue;
      if (!this.services.has(fold(check.spec.ServiceID))) continue;
      this.options.log?.('info', `agent: check ${check.spec.CheckID} critical for too long, deregistering service ${check.spec.ServiceID}`);
      try {
        await this.deregisterService(check.spec.ServiceID);
      } catch (err) {
        this.options.log?.('warn', `agent: deregistering critical service ${check.spec.ServiceID}: ${(err as Error).message}`);
      }
    }
  }

  private resetTtl(check: LocalCheck): void {
    if (check.ttlMs <= 0 || this.stopped) return;
    const key = fold(check.spec.CheckID);
    const previous = this.ttlTimers.get(key);
    if (previous) clearTimeout(previous);
    const timer = setTimeout(() => {
      this.ttlTimers.delete(key);
      const last = this.lastOutput.get(key) ?? '';
      const output = last === '' ? 'TTL expired' : `TTL expired (last output before timeout follows): ${last}`;
      void this.setStatus(check.spec.CheckID, 'critical', output).catch((err: Error) => this.options.log?.('warn', `agent: TTL expiry of ${check.spec.CheckID}: ${err.message}`));
      // Node fires a delay above 2^31-1 ms after 1 ms: a TTL over ~24.8 days waits that long instead.
    }, Math.min(check.ttlMs, 2 ** 31 - 1));
    timer.unref();
    this.ttlTimers.set(key, timer);
  }

  /** Sets a check's status locally and in the catalog (only when it changed). */
  private async setStatus(checkId: string, status: CheckStatus, output: string): Promise<void> {
    const key = fold(checkId);
    const check = this.checks.get(key);
    if (check === undefined) return;
    if (check.spec.Status === status && check.spec.Output === output) return;
    this.checks.set(key, { ...check, spec: { ...check.spec, Status: status, Output: output } });
    this.trackCritical(key, status);
    void this.persist().catch((err: Error) => this.options.log?.('warn', `agent: persisting check state: ${err.message}`));
    const coalesceMs = this.options.statusCoalesceMs ?? 0;
    if (coalesceMs > 0) {
      // The latest status wins; the batch leaves when the delay ends (flaps within it cost nothing).
      this.pendingStatus.set(key, { checkId: check.spec.CheckID, status, output });
      if (this.flushTimer === null && !this.stopped) {
        this.flushTimer = setTimeout(() => void this.flushStatus(), coalesceMs);
        this.flushTimer.unref();
      }
      return;
    }
    await this.sendStatuses([{ checkId: check.spec.CheckID, status, output }]);
  }

  /** Sends the coalesced status changes as one batch (nothing for those back at their synced value). */
  async flushStatus(): Promise<void> {
    this.flushTimer = null;
    const changes = [...this.pendingStatus.values()].filter((c) => this.syncedStatus.get(fold(c.checkId)) !== statusKey(c.status, c.output));
    this.pendingStatus.clear();
    if (changes.length > 0) await this.sendStatuses(changes);
  }

  private async sendStatuses(changes: readonly { checkId: string; status: CheckStatus; output: string }[]): Promise<void> {
    const commands = changes.map((c) => ({ type: 'catalogCheckStatus', node: this.options.nodeName, checkId: c.checkId, status: c.status, output: c.output }) as const);
    try {
      const outcomes = await this.backend.apply(commands);
      let resync = false;
      outcomes.forEach((outcome, i) => {
        const change = changes[i]!;
        if (outcome.ok) this.syncedStatus.set(fold(change.checkId), statusKey(change.status, change.output));
        // The check is not in the catalog yet (an earlier write failed), or no leader: a full sync fixes it.
        else resync = true;
      });
      if (resync) void this.syncNow();
    } catch (err) {
      this.options.log?.('warn', `agent: updating checks ${changes.map((c) => c.checkId).join(', ')}: ${(err as Error).message}`);
      void this.syncNow();
    }
  }

  /** A check runner's result for a non-TTL check (ignored for unknown checks). */
  async reportCheckResult(checkId: string, status: CheckStatus, output: string): Promise<void> {
    await this.setStatus(checkId, status, truncateOutput(output));
  }

  // -------------------------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------------------------

  private putCheck(check: LocalCheck): void {
    const key = fold(check.spec.CheckID);
    const existing = this.checks.get(key);
    // The definition's status applies when it names one; otherwise an existing check keeps its own.
    const spec = existing !== undefined && check.explicitStatus !== true ? { ...check.spec, Status: existing.spec.Status, Output: existing.spec.Output } : check.spec;
    this.checks.set(key, { spec, ttlMs: check.ttlMs, deregisterCriticalAfterMs: check.deregisterCriticalAfterMs, ...(check.thresholds ? { thresholds: check.thresholds } : {}) });
    this.trackCritical(key, spec.Status);
    this.resetTtl(this.checks.get(key)!);
    if (check.ttlMs <= 0) this.options.checkHooks?.added(this.checks.get(key)!);
  }

  private dropCheck(key: string): void {
    const check = this.checks.get(key);
    if (check !== undefined) this.options.checkHooks?.removed(check.spec.CheckID);
    this.checks.delete(key);
    this.pendingStatus.delete(key);
    this.criticalSince.delete(key);
    this.lastOutput.delete(key);
    const timer = this.ttlTimers.get(key);
    if (timer) clearTimeout(timer);
    this.ttlTimers.delete(key);
  }

  private trackCritical(key: string, status: CheckStatus): void {
    if (status !== 'critical') this.criticalSince.delete(key);
    else if (!this.criticalSince.has(key)) this.criticalSince.set(key, Date.now());
  }

  private checksOf(serviceKey: string): CatalogCheckSpec[] {
    return [...this.checks.values()].filter((c) => c.spec.ServiceID !== '' && fold(c.spec.ServiceID) === serviceKey).map((c) => c.spec);
  }

  private asHealthCheck(spec: CatalogCheckSpec): CatalogCheck {
    const service = spec.ServiceID === '' ? undefined : this.services.get(fold(spec.ServiceID));
    return { ...spec, Node: this.options.nodeName, ServiceName: service?.Service ?? '', ServiceTags: service?.Tags ?? [], CreateIndex: 0, ModifyIndex: 0 };
  }

  private nodeSpec(): CatalogNodeSpec {
    return catalogNodeSpec(this.options.nodeName, this.options.nodeAddress(), this.options.datacenter);
  }

  /**
   * Writes a command to the catalog. A failure (no leader, leadership lost) is not the client's: the
   * local state holds the change and the next anti-entropy round writes it, as Consul's agent does.
   * `retryOnFailure` schedules that round soon instead of at the next interval.
   */
  private async write(command: CatalogCommand, retryOnFailure = true): Promise<void> {
    this.checkCommand(command);
    try {
      const [outcome] = await this.backend.apply([command]);
      if (outcome === undefined) throw new Error('no answer from the catalog');
      if (!outcome.ok && outcome.unavailable !== true) throw new InvalidAgentRequestError(outcome.error);
      if (!outcome.ok) throw new Error(outcome.error);
    } catch (err) {
      if (err instanceof InvalidAgentRequestError) throw err;
      this.options.log?.('warn', `agent: catalog write failed, anti-entropy will retry: ${(err as Error).message}`);
      if (retryOnFailure && !this.stopped) setTimeout(() => void this.syncNow(), 1000).unref();
      if (!retryOnFailure) throw err;
    }
  }

  /** An anti-entropy batch: refused commands are logged (a later definition may fix them), lost ones retried. */
  private async writeBatch(commands: readonly CatalogCommand[]): Promise<void> {
    for (const command of commands) this.checkCommand(command);
    const outcomes = await this.backend.apply(commands);
    const unavailable = outcomes.find((o) => !o.ok && o.unavailable === true);
    if (unavailable && !unavailable.ok) throw new Error(unavailable.error);
    for (const [i, outcome] of outcomes.entries()) {
      if (!outcome.ok) this.options.log?.('warn', `agent: the catalog refused ${commands[i]!.type}: ${outcome.error}`);
    }
  }

  /** A command the FSM would refuse as invalid is the request's fault (400), never retried. */
  private checkCommand(command: CatalogCommand): void {
    const problem = validateCommand(command);
    if (problem !== null) throw new InvalidAgentRequestError(`Invalid request: ${problem}`);
  }

  private path(): string {
    return join(this.options.dataDir, AGENT_STATE_FILE);
  }

  private load(): void {
    let raw: string;
    try {
      raw = readFileSync(this.path(), 'utf8');
    } catch {
      return;
    }
    let state: PersistedState;
    try {
      state = JSON.parse(raw) as PersistedState;
    } catch (err) {
      this.options.log?.('warn', `agent: ${this.path()} is not JSON, ignoring it: ${(err as Error).message}`);
      return;
    }
    for (const service of Array.isArray(state.services) ? state.services : []) {
      if (checkServiceSpec(service) === null) this.services.set(fold(service.ID), service);
      else this.options.log?.('warn', `agent: ignoring an invalid service in ${this.path()}`);
    }
    for (const check of Array.isArray(state.checks) ? state.checks : []) {
      const valid = check && checkCheckSpec(check.spec) === null && Number.isFinite(check.ttlMs) && Number.isFinite(check.deregisterCriticalAfterMs);
      const serviceKnown = valid && (check.spec.ServiceID === '' || this.services.has(fold(check.spec.ServiceID)));
      if (valid && serviceKnown) {
        const thresholds = typeof check.thresholds === 'object' && check.thresholds !== null ? { thresholds: check.thresholds } : {};
        this.checks.set(fold(check.spec.CheckID), { spec: check.spec, ttlMs: check.ttlMs, deregisterCriticalAfterMs: check.deregisterCriticalAfterMs, ...thresholds });
      }
      else this.options.log?.('warn', `agent: ignoring an invalid check in ${this.path()}`);
    }
  }

  /**
   * Makes the current local state durable: resolves once a state-file write that includes every
   * change made before this call is on disk (the change is always applied in memory first).
   *
   * A group commit: one write runs at a time; changes made while it runs join one pending batch,
   * and the next write, whose snapshot is taken when it starts, covers the whole batch. A write
   * never starts before the previous one has finished, so a later snapshot always lands last and an
   * earlier one never overwrites it. A failed write fails its own batch only; the next write is of
   * the whole state, so it carries those changes too.
   */
  private persist(): Promise<void> {
    this.persistChanges++;
    let batch = this.persistPending;
    if (batch === null) {
      let resolve!: () => void;
      let reject!: (err: Error) => void;
      const done = new Promise<void>((res, rej) => {
        resolve = res;
        reject = rej;
      });
      // Every caller still gets a failure; this only keeps a batch nobody awaits from being unhandled.
      done.catch(() => {});
      batch = { done, resolve, reject };
      this.persistPending = batch;
    }
    if (this.persisting === null) this.persisting = this.persistLoop();
    return batch.done;
  }

  /** Writes pending batches one after another until none is left. */
  private async persistLoop(): Promise<void> {
    // Let the changes of this turn of the event loop join the first batch.
    await Promise.resolve();
    try {
      for (let batch = this.persistPending; batch !== null; batch = this.persistPending) {
        this.persistPending = null;
        try {
          // The snapshot is taken synchronously, after every change of the batch was applied.
          await this.writeStateFile(JSON.stringify(this.snapshot()));
          this.persistWrites++;
          batch.resolve();
        } catch (err) {
          batch.reject(err as Error);
        }
      }
    } finally {
      this.persisting = null;
    }
  }

  /** Waits until no state-file write is running or pending. */
  private async persistIdle(): Promise<void> {
    while (this.persisting !== null) await this.persisting;
  }

  private snapshot(): PersistedState {
    return {
      version: 1,
      services: this.listServices(),
      checks: [...this.checks.values()].map((c) => ({ spec: c.spec, ttlMs: c.ttlMs, deregisterCriticalAfterMs: c.deregisterCriticalAfterMs, ...(c.thresholds ? { thresholds: { ...c.thresholds } } : {}) })),
    };
  }

  /**
   * Replaces the state file atomically and durably: a temporary file written and fsynced, renamed
   * over the old one, then the directory fsynced so that the rename itself survives a crash. A crash
   * at any point leaves either the old file or the new one, never a partial one.
   */
  private async writeStateFile(json: string): Promise<void> {
    mkdirSync(this.options.dataDir, { recursive: true });
    const temp = `${this.path()}.tmp`;
    const file = await open(temp, 'w');
    try {
      await file.writeFile(json);
      await file.sync();
    } finally {
      await file.close();
    }
    await rename(temp, this.path());
    const dir = await open(this.options.dataDir, 'r');
    try {
      await dir.sync();
    } finally {
      await dir.close();
    }
  }
}

/** Changes waiting for the next state-file write, and the promise their callers wait on. */
interface PersistBatch {
  readonly done: Promise<void>;
  readonly resolve: () => void;
  readonly reject: (err: Error) => void;
}

function checkInSync(c: CatalogCheckSpec | undefined, spec: CatalogCheckSpec): boolean {
  return (
    c !== undefined &&
    c.Status === spec.Status &&
    c.Output === spec.Output &&
    c.Name === spec.Name &&
    c.Notes === spec.Notes &&
    fold(c.ServiceID) === fold(spec.ServiceID) &&
    c.Type === spec.Type &&
    JSON.stringify(c.Definition) === JSON.stringify(spec.Definition)
  );
}

function sameNodeSpec(a: CatalogNodeSpec, b: CatalogNodeSpec): boolean {
  return (
    a.Address === b.Address &&
    a.Datacenter === b.Datacenter &&
    JSON.stringify(sortedEntries(a.TaggedAddresses)) === JSON.stringify(sortedEntries(b.TaggedAddresses)) &&
    JSON.stringify(sortedEntries(a.Meta)) === JSON.stringify(sortedEntries(b.Meta))
  );
}

function statusKey(status: string, output: string): string {
  return `${status}\u0000${output}`;
}

function fold(s: string): string {
  return s.toLowerCase();
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Consul's CheckTTL.SetStatus truncation. */
export function truncateOutput(output: string): string {
  const total = Buffer.byteLength(output);
  if (total <= CHECK_OUTPUT_MAX_BYTES) return output;
  const head = Buffer.from(output).subarray(0, CHECK_OUTPUT_MAX_BYTES).toString('utf8');
  return `${head} ... (captured ${CHECK_OUTPUT_MAX_BYTES} of ${total} bytes)`;
}

function sameServiceSpec(a: CatalogServiceSpec, b: CatalogServiceSpec): boolean {
  const fields = (s: CatalogServiceSpec) =>
    JSON.stringify([s.ID, s.Service, s.Tags, s.Address, s.Port, sortedEntries(s.Meta), s.EnableTagOverride, s.Weights.Passing, s.Weights.Warning, sortedEntries(s.TaggedAddresses), s.Dependencies]);
  return fields(a) === fields(b);
}

function sortedEntries<T>(map: Readonly<Record<string, T>>): [string, T][] {
  return Object.entries(map).sort((x, y) => compare(x[0], y[0]));
}
