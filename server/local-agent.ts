// The agent that runs inside every server (full agent mode is its own issue): services and checks
// registered through /v1/agent/* live on the server's own node and reach the catalog through Raft.
//
// - Local state is the source of truth, as in Consul's agent/local: every change is written to the
//   catalog at once, and an anti-entropy round (every `syncIntervalMs`, and after a failed write)
//   repairs drift both ways: local entries missing or stale in the catalog are registered, entries on
//   this node that the agent does not know are deregistered (except the "consul" service and the
//   serfHealth check, which the leader keeps; server-registration.ts).
// - Definitions (with check statuses) persist in <data dir>/agent-local.json, written atomically
//   before a registration is acknowledged, and are registered again after a restart.
// - TTL checks run here, on the server that registered them: time stays out of the FSM. A TTL that
//   runs out sets the check critical with Consul's output ("TTL expired ..."). Other check types are
//   stored and reported with their registered status but not executed (agent mode runs them).
// - DeregisterCriticalServiceAfter: a service whose check has been critical that long is removed
//   (at least `deregisterMinMs` after, checked every `reapIntervalMs`: Consul's 1 minute and 30 s).
// - Maintenance mode is Consul's `_service_maintenance:<id>` critical check.
import { mkdirSync, readFileSync } from 'node:fs';
import { open, rename } from 'node:fs/promises';
import { join } from 'node:path';
import { encodeCommand, validateCommand } from '../fsm/commands.ts';
import type { ApplyError } from '../fsm/konsul-fsm.ts';
import {
  checkCheckSpec,
  checkServiceSpec,
  type CatalogCheckSpec,
  type CatalogCommand,
  type CatalogNodeSpec,
  type CatalogServiceSpec,
  type CheckStatus,
} from '../fsm/state/catalog-commands.ts';
import { CONSUL_SERVICE_ID, SERF_CHECK_ID, type CatalogApplyResult, type CatalogCheck, type CatalogTable } from '../fsm/state/catalog.ts';
import { HttpError } from './errors.ts';

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
}

export interface LocalAgentOptions {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly dataDir: string;
  /** The address this server's node is registered with (see server-registration.ts). */
  readonly nodeAddress: () => string;
  readonly catalog: CatalogTable;
  readonly propose: (command: Uint8Array) => Promise<unknown>;
  /** Brings the local catalog up to date before an anti-entropy round compares against it. */
  readonly readBarrier: () => Promise<void>;
  readonly syncIntervalMs?: number;
  readonly reapIntervalMs?: number;
  readonly deregisterMinMs?: number;
  readonly log?: (level: 'warn' | 'info', message: string) => void;
}

interface PersistedState {
  readonly version: 1;
  readonly services: CatalogServiceSpec[];
  readonly checks: { spec: CatalogCheckSpec; ttlMs: number; deregisterCriticalAfterMs: number }[];
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
  private syncTimer: NodeJS.Timeout | null = null;
  private reapTimer: NodeJS.Timeout | null = null;
  private persistChain: Promise<void> = Promise.resolve();
  private persistDirty = false;
  private syncing: Promise<void> | null = null;
  private stopped = false;

  constructor(options: LocalAgentOptions) {
    this.options = options;
    this.load();
  }

  /** Starts the TTL timers and the anti-entropy and reaper loops; the first sync runs at once. */
  start(): void {
    for (const check of this.checks.values()) this.resetTtl(check);
    const now = Date.now();
    for (const check of this.checks.values()) if (check.spec.Status === 'critical') this.criticalSince.set(fold(check.spec.CheckID), now);
    this.syncTimer = setInterval(() => void this.syncNow(), this.options.syncIntervalMs ?? 10_000);
    this.syncTimer.unref();
    this.reapTimer = setInterval(() => void this.reapCritical(Date.now()), this.options.reapIntervalMs ?? 30_000);
    this.reapTimer.unref();
    void this.syncNow();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.syncTimer) clearInterval(this.syncTimer);
    if (this.reapTimer) clearInterval(this.reapTimer);
    for (const timer of this.ttlTimers.values()) clearTimeout(timer);
    this.ttlTimers.clear();
    await this.persistChain.catch(() => {});
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
    if (problem) throw new HttpError(400, `Invalid service: ${problem}`);
    for (const check of checks) {
      const checkProblem = checkCheckSpec(check.spec);
      if (checkProblem) throw new HttpError(400, `Invalid check: ${checkProblem}`);
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
    if (service === undefined) {
      throw new HttpError(404, `Unknown service ID ${JSON.stringify(serviceId)}. Ensure that the service ID is passed, not the service name.`);
    }
    this.services.delete(id);
    for (const [key, check] of [...this.checks]) if (fold(check.spec.ServiceID) === id) this.dropCheck(key);
    await this.persist();
    await this.write({ type: 'catalogDeregister', node: this.options.nodeName, serviceId: service.ID });
  }

  /** Adds or replaces a check; a service-level check needs its service (404 otherwise). */
  async registerCheck(check: LocalCheck): Promise<void> {
    const problem = checkCheckSpec(check.spec);
    if (problem) throw new HttpError(400, `Invalid check: ${problem}`);
    let spec = check.spec;
    if (spec.ServiceID !== '') {
      const service = this.services.get(fold(spec.ServiceID));
      if (service === undefined) throw new HttpError(404, `ServiceID ${JSON.stringify(spec.ServiceID)} does not exist`);
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
    if (check.ttlMs <= 0) throw new HttpError(500, `CheckID ${JSON.stringify(checkId)} does not have associated TTL`);
    const captured = truncateOutput(output);
    this.lastOutput.set(fold(checkId), captured);
    this.resetTtl(check);
    await this.setStatus(check.spec.CheckID, status, captured);
  }

  /** Consul's EnableServiceMaintenance / DisableServiceMaintenance. */
  async setServiceMaintenance(serviceId: string, enable: boolean, reason: string): Promise<void> {
    const service = this.services.get(fold(serviceId));
    if (service === undefined) throw new HttpError(404, `No service registered with ID ${JSON.stringify(serviceId)}`);
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

  private async sync(): Promise<void> {
    if (this.stopped) return;
    const { catalog, nodeName } = this.options;
    try {
      await this.options.readBarrier();
      // Local services (with their checks) that the catalog lacks or holds differently.
      for (const [id, service] of this.services) {
        const inCatalog = catalog.getService(nodeName, service.ID);
        const checks = this.checksOf(id);
        const stale = inCatalog === undefined || !sameServiceSpec(inCatalog, service) || checks.some((c) => !this.checkInSync(c));
        if (stale) await this.write({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, service, checks }, false);
      }
      const nodeChecks = [...this.checks.values()].filter((c) => c.spec.ServiceID === '').map((c) => c.spec);
      const staleNodeChecks = nodeChecks.filter((c) => !this.checkInSync(c));
      if (staleNodeChecks.length > 0) await this.write({ type: 'catalogRegister', node: this.nodeSpec(), skipNodeUpdate: false, checks: staleNodeChecks }, false);
      // Entries on this node that the agent does not know (the leader's own registrations excepted).
      for (const service of catalog.nodeServices(nodeName)) {
        if (service.ID === CONSUL_SERVICE_ID || this.services.has(fold(service.ID))) continue;
        await this.write({ type: 'catalogDeregister', node: nodeName, serviceId: service.ID }, false);
      }
      for (const check of catalog.nodeChecks(nodeName)) {
        if (check.CheckID === SERF_CHECK_ID || check.ServiceID === CONSUL_SERVICE_ID || this.checks.has(fold(check.CheckID))) continue;
        await this.write({ type: 'catalogDeregister', node: nodeName, checkId: check.CheckID }, false);
      }
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
    }, check.ttlMs);
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
    const command = { type: 'catalogCheckStatus', node: this.options.nodeName, checkId: check.spec.CheckID, status, output } as const;
    try {
      const result = (await this.options.propose(encodeCommand(command))) as CatalogApplyResult | ApplyError;
      // The check is not in the catalog yet (an earlier write failed): a full sync registers it.
      if (!result.ok) void this.syncNow();
    } catch (err) {
      this.options.log?.('warn', `agent: updating check ${checkId}: ${(err as Error).message}`);
      void this.syncNow();
    }
  }

  // -------------------------------------------------------------------------------------------
  // Internals
  // -------------------------------------------------------------------------------------------

  private putCheck(check: LocalCheck): void {
    const key = fold(check.spec.CheckID);
    const existing = this.checks.get(key);
    // The definition's status applies when it names one; otherwise an existing check keeps its own.
    const spec = existing !== undefined && check.explicitStatus !== true ? { ...check.spec, Status: existing.spec.Status, Output: existing.spec.Output } : check.spec;
    this.checks.set(key, { spec, ttlMs: check.ttlMs, deregisterCriticalAfterMs: check.deregisterCriticalAfterMs });
    this.trackCritical(key, spec.Status);
    this.resetTtl(this.checks.get(key)!);
  }

  private dropCheck(key: string): void {
    this.checks.delete(key);
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

  private checkInSync(spec: CatalogCheckSpec): boolean {
    const c = this.options.catalog.getCheck(this.options.nodeName, spec.CheckID);
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

  private asHealthCheck(spec: CatalogCheckSpec): CatalogCheck {
    const service = spec.ServiceID === '' ? undefined : this.services.get(fold(spec.ServiceID));
    return { ...spec, Node: this.options.nodeName, ServiceName: service?.Service ?? '', ServiceTags: service?.Tags ?? [], CreateIndex: 0, ModifyIndex: 0 };
  }

  private nodeSpec(): CatalogNodeSpec {
    const address = this.options.nodeAddress();
    return {
      Node: this.options.nodeName,
      ID: '',
      Address: address,
      Datacenter: this.options.datacenter,
      TaggedAddresses: { lan: address, lan_ipv4: address, wan: address, wan_ipv4: address },
      Meta: { 'consul-network-segment': '' },
    };
  }

  /**
   * Writes a command to the catalog. A failure (no leader, leadership lost) is not the client's: the
   * local state holds the change and the next anti-entropy round writes it, as Consul's agent does.
   * `retryOnFailure` schedules that round soon instead of at the next interval.
   */
  private async write(command: CatalogCommand, retryOnFailure = true): Promise<void> {
    this.checkCommand(command);
    try {
      const result = (await this.options.propose(encodeCommand(command))) as CatalogApplyResult | ApplyError;
      if (!result.ok) throw new HttpError(400, result.error);
    } catch (err) {
      if (err instanceof HttpError) throw err;
      this.options.log?.('warn', `agent: catalog write failed, anti-entropy will retry: ${(err as Error).message}`);
      if (retryOnFailure && !this.stopped) setTimeout(() => void this.syncNow(), 1000).unref();
      if (!retryOnFailure) throw err;
    }
  }

  /** A command the FSM would refuse as invalid is the request's fault (400), never retried. */
  private checkCommand(command: CatalogCommand): void {
    const problem = validateCommand(command);
    if (problem !== null) throw new HttpError(400, `Invalid request: ${problem}`);
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
      if (valid && serviceKnown) this.checks.set(fold(check.spec.CheckID), { spec: check.spec, ttlMs: check.ttlMs, deregisterCriticalAfterMs: check.deregisterCriticalAfterMs });
      else this.options.log?.('warn', `agent: ignoring an invalid check in ${this.path()}`);
    }
  }

  /** Writes the state file atomically; concurrent callers share one write that includes their change. */
  private persist(): Promise<void> {
    this.persistDirty = true;
    this.persistChain = this.persistChain
      .catch(() => {})
      .then(async () => {
        if (!this.persistDirty) return;
        this.persistDirty = false;
        const state: PersistedState = {
          version: 1,
          services: this.listServices(),
          checks: [...this.checks.values()].map((c) => ({ spec: c.spec, ttlMs: c.ttlMs, deregisterCriticalAfterMs: c.deregisterCriticalAfterMs })),
        };
        mkdirSync(this.options.dataDir, { recursive: true });
        const temp = `${this.path()}.tmp`;
        const file = await open(temp, 'w');
        try {
          await file.writeFile(JSON.stringify(state));
          await file.sync();
        } finally {
          await file.close();
        }
        await rename(temp, this.path());
      });
    return this.persistChain;
  }
}

function fold(s: string): string {
  return s.toLowerCase();
}

function compare(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

function unknownCheck(checkId: string): HttpError {
  return new HttpError(404, `Unknown check ID ${JSON.stringify(checkId)}. Ensure that the check ID is passed, not the check name.`);
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
