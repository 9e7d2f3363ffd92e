// The catalog: nodes, the service instances registered on them, and their health checks, with
// Consul's register/deregister semantics (agent/consul/state/catalog.go) and indexes fine enough that
// a blocking query on service A does not wake for a write to service B.
//
// Semantics (Consul's):
// - Registering a service or check on a node creates the node. Node fields are rewritten only when
//   they differ (and never with skipNodeUpdate); an unchanged service or check is not rewritten
//   (ModifyIndex stays, no watcher wakes).
// - A check without ServiceID is node-level: it counts for every service on the node. A service-level
//   check copies its service's name and tags (ensureCheckTxn), kept up to date when the service changes.
// - Deregistering a service removes its checks; deregistering a node removes its services and checks.
// - Names are case-insensitive, as in Consul's memdb indexes (node names, service names and IDs,
//   check IDs): "Web" and "web" are one service. Results list in the order of those lowercase keys.
//
// Indexes (all Raft indexes): the table's; one per sub-table (nodes, services, checks) as Consul keeps
// them; one per service name (bumped by any change to an instance, its checks, or its node, including
// node-level checks: Consul's updateAllServiceIndexesOfNode), removed when the last instance goes, at
// which point the "last extinction" index takes over for missing services (catalogServiceLastExtinctionIndex);
// and, a Konsul refinement, one per node (the node, its services and checks) for /catalog/node and
// /health/node, with the nodes index answering for a missing node. Every answer a watcher sees only grows.
//
// Watch keys (table 'catalog'): WATCH_NODES, WATCH_SERVICES, WATCH_CHECKS for the sub-tables,
// serviceWatchKey(name) and nodeWatchKey(node) for one service or node.
//
// Effects for other tables: a write answers the checks that became critical, the checks and nodes it
// removed (the sessions table invalidates sessions bound to them, as Consul does in the same
// transaction). `nodeExists` and `checkStatus` are the lookups session creation needs.

import { compareKeys } from './sorted-keys.ts';
import type {
  CatalogCheckSpec,
  CatalogDeregisterCommand,
  CatalogCheckStatusCommand,
  CatalogNodeSpec,
  CatalogRegisterCommand,
  CatalogServiceSpec,
  CheckStatus,
  JsonValue,
  ServiceAddressSpec,
  WeightsSpec,
} from './catalog-commands.ts';

export interface CatalogNode extends CatalogNodeSpec {
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export interface CatalogService extends CatalogServiceSpec {
  /** The node the instance is registered on (its name as registered). */
  readonly Node: string;
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export interface CatalogCheck extends CatalogCheckSpec {
  readonly Node: string;
  /** The service's name and tags for a service-level check; '' and [] for a node-level one. */
  readonly ServiceName: string;
  readonly ServiceTags: readonly string[];
  readonly CreateIndex: number;
  readonly ModifyIndex: number;
}

export type { CheckStatus, ServiceAddressSpec, WeightsSpec, JsonValue };

/** A check, by node and check ID (as registered). */
export interface CheckRef {
  readonly node: string;
  readonly checkId: string;
}

/** What a successful catalog write did that other tables must react to. */
export interface CatalogWriteEffects {
  /** Checks whose status became critical (registered critical, or moved to critical). */
  readonly criticalChecks: readonly CheckRef[];
  /** Checks removed (directly, with their service, or with their node). */
  readonly deregisteredChecks: readonly CheckRef[];
  /** Nodes removed. */
  readonly deregisteredNodes: readonly string[];
}

/** What a catalog command answers through `propose` (JSON-serialisable). */
export type CatalogApplyResult =
  | ({ readonly kind: 'catalog'; readonly ok: true } & CatalogWriteEffects)
  | { readonly kind: 'catalog'; readonly ok: false; readonly error: string };

export interface CatalogWriteOutcome {
  readonly result: CatalogApplyResult;
  /** Watch keys of table 'catalog' that changed (empty when nothing did). */
  readonly changedKeys: readonly string[];
}

/** A service instance with its node and the checks that apply to it (node-level first). */
export interface CheckServiceNode {
  readonly node: CatalogNode;
  readonly service: CatalogService;
  readonly checks: readonly CatalogCheck[];
}

export interface CatalogNodeDump {
  readonly node: CatalogNode;
  /** The node's own index (see nodeIndex). */
  readonly index: number;
  /** Ordered by lowercase ID. */
  readonly services: readonly CatalogService[];
  readonly checks: readonly CatalogCheck[];
}

export interface CatalogTableDump {
  readonly index: number;
  readonly nodesIndex: number;
  readonly servicesIndex: number;
  readonly checksIndex: number;
  readonly lastExtinctionIndex: number;
  /** Ordered by lowercase node name. */
  readonly nodes: readonly CatalogNodeDump[];
  /** [lowercase service name, index], ordered by name: one per service that has instances. */
  readonly serviceIndexes: readonly (readonly [string, number])[];
}

export const EMPTY_CATALOG_DUMP: CatalogTableDump = {
  index: 0,
  nodesIndex: 0,
  servicesIndex: 0,
  checksIndex: 0,
  lastExtinctionIndex: 0,
  nodes: [],
  serviceIndexes: [],
};

export const WATCH_NODES = 'nodes';
export const WATCH_SERVICES = 'services';
export const WATCH_CHECKS = 'checks';
export const serviceWatchKey = (name: string): string => `service:${fold(name)}`;
export const nodeWatchKey = (node: string): string => `node:${fold(node)}`;

/** Consul's IDs of the check and service every server registers for itself (agent/structs). */
export const SERF_CHECK_ID = 'serfHealth';
export const CONSUL_SERVICE_ID = 'consul';

interface NodeRecord {
  node: CatalogNode;
  /** The last index that changed the node, its services or its checks. */
  index: number;
  readonly services: Map<string, CatalogService>;
  readonly checks: Map<string, CatalogCheck>;
}

interface ServiceNameRecord {
  index: number;
  /** By instanceKey(node, id). */
  readonly instances: Map<string, CatalogService>;
  /** Instances in (node, ID) order; rebuilt lazily after a change. */
  sorted: CatalogService[] | null;
}

function fold(name: string): string {
  return name.toLowerCase();
}

function instanceKey(node: string, serviceId: string): string {
  return `${fold(node)}\u0000${fold(serviceId)}`;
}

/** Accumulates one write's changes; applied only after every precondition held. */
class Write {
  readonly keys = new Set<string>();
  readonly criticalChecks: CheckRef[] = [];
  readonly deregisteredChecks: CheckRef[] = [];
  readonly deregisteredNodes: string[] = [];

  outcome(): CatalogWriteOutcome {
    return {
      result: {
        kind: 'catalog',
        ok: true,
        criticalChecks: this.criticalChecks,
        deregisteredChecks: this.deregisteredChecks,
        deregisteredNodes: this.deregisteredNodes,
      },
      changedKeys: [...this.keys],
    };
  }
}

function rejected(error: string): CatalogWriteOutcome {
  return { result: { kind: 'catalog', ok: false, error }, changedKeys: [] };
}

export class CatalogTable {
  private readonly nodeRecords = new Map<string, NodeRecord>();
  /** Lowercase node ID → lowercase node name, for nodes that have an ID. */
  private readonly nodeIds = new Map<string, string>();
  private readonly serviceNames = new Map<string, ServiceNameRecord>();
  private tableIndex = 0;
  private nodesIdx = 0;
  private servicesIdx = 0;
  private checksIdx = 0;
  private lastExtinction = 0;

  // -----------------------------------------------------------------------------------------
  // Indexes
  // -----------------------------------------------------------------------------------------

  /** The last index that changed anything in the catalog. */
  index(): number {
    return this.tableIndex;
  }

  nodesIndex(): number {
    return this.nodesIdx;
  }

  servicesIndex(): number {
    return this.servicesIdx;
  }

  checksIndex(): number {
    return this.checksIdx;
  }

  /**
   * The index for anything about one service name: its instances, their checks and nodes. A service
   * without instances answers the last extinction index (or the services index before any), so a
   * watcher's index never goes backwards when a service disappears and comes back.
   */
  serviceIndex(name: string): number {
    const record = this.serviceNames.get(fold(name));
    if (record !== undefined) return record.index;
    return this.lastExtinction > 0 ? this.lastExtinction : this.servicesIdx;
  }

  /** The index for one node, its services and checks; the nodes index for a missing node. */
  nodeIndex(node: string): number {
    return this.nodeRecords.get(fold(node))?.index ?? this.nodesIdx;
  }

  // -----------------------------------------------------------------------------------------
  // Reads
  // -----------------------------------------------------------------------------------------

  get nodeCount(): number {
    return this.nodeRecords.size;
  }

  nodeExists(node: string): boolean {
    return this.nodeRecords.has(fold(node));
  }

  /** A check's status, or undefined when the node or check does not exist. */
  checkStatus(node: string, checkId: string): CheckStatus | undefined {
    return this.nodeRecords.get(fold(node))?.checks.get(fold(checkId))?.Status;
  }

  getNode(node: string): CatalogNode | undefined {
    return this.nodeRecords.get(fold(node))?.node;
  }

  getCheck(node: string, checkId: string): CatalogCheck | undefined {
    return this.nodeRecords.get(fold(node))?.checks.get(fold(checkId));
  }

  getService(node: string, serviceId: string): CatalogService | undefined {
    return this.nodeRecords.get(fold(node))?.services.get(fold(serviceId));
  }

  /** Every node, ordered by name. */
  nodes(): CatalogNode[] {
    return this.sortedNodeRecords().map((r) => r.node);
  }

  /** A node's services, ordered by ID ([] for a missing node). */
  nodeServices(node: string): CatalogService[] {
    const record = this.nodeRecords.get(fold(node));
    return record ? sortedValues(record.services) : [];
  }

  /** A node's checks, ordered by check ID ([] for a missing node). */
  nodeChecks(node: string): CatalogCheck[] {
    const record = this.nodeRecords.get(fold(node));
    return record ? sortedValues(record.checks) : [];
  }

  /**
   * Service names with the union of their instances' tags (each tag once, in first-seen order over
   * the instances in (node, ID) order). Names are listed as the first instance spells them.
   */
  services(nodeFilter?: (node: CatalogNode) => boolean): Map<string, string[]> {
    const out = new Map<string, string[]>();
    const names = [...this.serviceNames.keys()].sort(compareKeys);
    for (const name of names) {
      let tags: Set<string> | null = null;
      let display = '';
      for (const instance of this.instances(name)) {
        if (nodeFilter !== undefined) {
          const node = this.nodeRecords.get(fold(instance.Node))?.node;
          if (node === undefined || !nodeFilter(node)) continue;
        }
        if (tags === null) {
          tags = new Set();
          display = instance.Service;
        }
        for (const tag of instance.Tags) tags.add(tag);
      }
      if (tags !== null) out.set(display, [...tags]);
    }
    return out;
  }

  /** The instances of a service, ordered by (node, service ID). */
  instances(name: string): readonly CatalogService[] {
    const record = this.serviceNames.get(fold(name));
    if (record === undefined) return [];
    if (record.sorted === null) {
      record.sorted = [...record.instances.entries()].sort((a, b) => compareKeys(a[0], b[0])).map(([, s]) => s);
    }
    return record.sorted;
  }

  /** The node an instance is registered on. */
  nodeOf(service: CatalogService): CatalogNode {
    const record = this.nodeRecords.get(fold(service.Node));
    if (record === undefined) throw new Error(`catalog invariant: service ${service.ID} on missing node ${service.Node}`);
    return record.node;
  }

  /** The checks that apply to an instance: its node's node-level checks, then its own, each by ID. */
  checksFor(service: CatalogService): CatalogCheck[] {
    const record = this.nodeRecords.get(fold(service.Node));
    if (record === undefined) return [];
    const id = fold(service.ID);
    const nodeLevel: [string, CatalogCheck][] = [];
    const own: [string, CatalogCheck][] = [];
    for (const entry of record.checks) {
      const serviceId = entry[1].ServiceID;
      if (serviceId === '') nodeLevel.push(entry);
      else if (fold(serviceId) === id) own.push(entry);
    }
    const byKey = (a: [string, CatalogCheck], b: [string, CatalogCheck]) => compareKeys(a[0], b[0]);
    return [...nodeLevel.sort(byKey), ...own.sort(byKey)].map(([, c]) => c);
  }

  /** /v1/health/service: every instance with its node and checks, in instance order. */
  checkServiceNodes(name: string): CheckServiceNode[] {
    return this.instances(name).map((service) => ({ node: this.nodeOf(service), service, checks: this.checksFor(service) }));
  }

  /** /v1/health/checks: the service-level checks of every instance of a service, by (node, check ID). */
  serviceChecks(name: string): CatalogCheck[] {
    const out: CatalogCheck[] = [];
    const seen = new Set<string>();
    for (const instance of this.instances(name)) {
      const nodeKey = fold(instance.Node);
      if (seen.has(nodeKey)) continue;
      seen.add(nodeKey);
      const record = this.nodeRecords.get(nodeKey);
      if (record === undefined) continue;
      for (const check of sortedValues(record.checks)) {
        if (check.ServiceID !== '' && fold(check.ServiceName) === fold(name)) out.push(check);
      }
    }
    return out;
  }

  /** /v1/health/state: the checks in a state ('any' for all), by (node, check ID). */
  checksInState(state: string): CatalogCheck[] {
    const out: CatalogCheck[] = [];
    for (const record of this.sortedNodeRecords()) {
      for (const check of sortedValues(record.checks)) {
        if (state === 'any' || check.Status === state) out.push(check);
      }
    }
    return out;
  }

  // -----------------------------------------------------------------------------------------
  // Writes
  // -----------------------------------------------------------------------------------------

  /** Consul's ensureRegistrationTxn: node, then service, then checks; all or nothing. */
  register(index: number, command: CatalogRegisterCommand): CatalogWriteOutcome {
    const spec = command.node;
    const nodeKey = fold(spec.Node);
    const existing = this.nodeRecords.get(nodeKey);
    // Preconditions, before anything changes.
    if (!command.skipNodeUpdate && spec.Address === '') return rejected('Must provide address if SkipNodeUpdate is not set');
    if (spec.ID !== '' && (existing === undefined || !command.skipNodeUpdate)) {
      const owner = this.nodeIds.get(fold(spec.ID));
      if (owner !== undefined && owner !== nodeKey) {
        const ownerName = this.nodeRecords.get(owner)?.node.Node ?? owner;
        return rejected(`node ID ${JSON.stringify(spec.ID)} for node ${JSON.stringify(spec.Node)} aliases existing node ${JSON.stringify(ownerName)}`);
      }
    }
    const requestServiceId = command.service !== undefined ? fold(command.service.ID) : undefined;
    for (const check of command.checks) {
      if (check.ServiceID === '' || fold(check.ServiceID) === requestServiceId) continue;
      if (existing === undefined || !existing.services.has(fold(check.ServiceID))) {
        return rejected(`Unknown service ID '${check.ServiceID}' for check ID '${check.CheckID}'`);
      }
    }

    const write = new Write();
    const record = this.ensureNode(index, command, existing, write);
    if (command.service !== undefined) this.ensureService(index, record, command.service, write);
    for (const check of command.checks) this.ensureCheck(index, record, check, write);
    return this.finish(index, write);
  }

  /** Consul's applyDeregister: a service (with its checks), else a check, else the whole node. */
  deregister(index: number, command: CatalogDeregisterCommand): CatalogWriteOutcome {
    const write = new Write();
    const record = this.nodeRecords.get(fold(command.node));
    if (record !== undefined) {
      if (command.serviceId !== undefined) this.deleteService(index, record, fold(command.serviceId), write);
      else if (command.checkId !== undefined) this.deleteCheck(index, record, fold(command.checkId), write);
      else this.deleteNode(index, record, write);
    }
    return this.finish(index, write);
  }

  /** Sets a check's status and output; unchanged values change nothing. */
  updateCheckStatus(index: number, command: CatalogCheckStatusCommand): CatalogWriteOutcome {
    const record = this.nodeRecords.get(fold(command.node));
    const check = record?.checks.get(fold(command.checkId));
    if (record === undefined || check === undefined) {
      return rejected(`Check ${JSON.stringify(command.checkId)} is not registered on node ${JSON.stringify(command.node)}`);
    }
    const write = new Write();
    if (check.Status !== command.status || check.Output !== command.output) {
      this.putCheck(index, record, { ...check, Status: command.status, Output: command.output, ModifyIndex: index }, check, write);
    }
    return this.finish(index, write);
  }

  // -----------------------------------------------------------------------------------------
  // Snapshot
  // -----------------------------------------------------------------------------------------

  dump(): CatalogTableDump {
    return {
      index: this.tableIndex,
      nodesIndex: this.nodesIdx,
      servicesIndex: this.servicesIdx,
      checksIndex: this.checksIdx,
      lastExtinctionIndex: this.lastExtinction,
      nodes: this.sortedNodeRecords().map((r) => ({
        node: r.node,
        index: r.index,
        services: sortedValues(r.services),
        checks: sortedValues(r.checks),
      })),
      serviceIndexes: [...this.serviceNames.entries()].sort((a, b) => compareKeys(a[0], b[0])).map(([name, r]) => [name, r.index] as const),
    };
  }

  /** Replaces the whole table (a snapshot's dump, already checked by its decoder). */
  load(dump: CatalogTableDump): void {
    this.nodeRecords.clear();
    this.nodeIds.clear();
    this.serviceNames.clear();
    this.tableIndex = dump.index;
    this.nodesIdx = dump.nodesIndex;
    this.servicesIdx = dump.servicesIndex;
    this.checksIdx = dump.checksIndex;
    this.lastExtinction = dump.lastExtinctionIndex;
    for (const n of dump.nodes) {
      const record: NodeRecord = { node: n.node, index: n.index, services: new Map(), checks: new Map() };
      const nodeKey = fold(n.node.Node);
      this.nodeRecords.set(nodeKey, record);
      if (n.node.ID !== '') this.nodeIds.set(fold(n.node.ID), nodeKey);
      for (const s of n.services) {
        record.services.set(fold(s.ID), s);
        this.addInstance(s, 0);
      }
      for (const c of n.checks) record.checks.set(fold(c.CheckID), c);
    }
    for (const [name, index] of dump.serviceIndexes) {
      const r = this.serviceNames.get(name);
      if (r !== undefined) r.index = index;
    }
    // A name the dump gave no index (it should not happen) takes its newest instance's.
    for (const r of this.serviceNames.values()) {
      if (r.index === 0) for (const s of r.instances.values()) r.index = Math.max(r.index, s.ModifyIndex);
    }
  }

  // -----------------------------------------------------------------------------------------
  // Internals
  // -----------------------------------------------------------------------------------------

  private finish(index: number, write: Write): CatalogWriteOutcome {
    if (write.keys.size > 0) this.tableIndex = index;
    return write.outcome();
  }

  private sortedNodeRecords(): NodeRecord[] {
    return [...this.nodeRecords.entries()].sort((a, b) => compareKeys(a[0], b[0])).map(([, r]) => r);
  }

  private ensureNode(index: number, command: CatalogRegisterCommand, existing: NodeRecord | undefined, write: Write): NodeRecord {
    const spec = command.node;
    if (existing !== undefined) {
      if (command.skipNodeUpdate || !nodeChanged(existing.node, spec)) return existing;
      const updated: CatalogNode = { ...nodeFields(spec), CreateIndex: existing.node.CreateIndex, ModifyIndex: index };
      if (existing.node.ID !== '' && fold(existing.node.ID) !== fold(updated.ID)) this.nodeIds.delete(fold(existing.node.ID));
      if (updated.ID !== '') this.nodeIds.set(fold(updated.ID), fold(updated.Node));
      existing.node = updated;
      this.touchNode(index, existing, write);
      // Instances carry their node's fields in every answer: all of the node's services changed.
      for (const service of existing.services.values()) this.touchService(index, service.Service, write);
      return existing;
    }
    const record: NodeRecord = {
      node: { ...nodeFields(spec), CreateIndex: index, ModifyIndex: index },
      index,
      services: new Map(),
      checks: new Map(),
    };
    const nodeKey = fold(spec.Node);
    this.nodeRecords.set(nodeKey, record);
    if (spec.ID !== '') this.nodeIds.set(fold(spec.ID), nodeKey);
    this.touchNode(index, record, write);
    return record;
  }

  private ensureService(index: number, record: NodeRecord, spec: CatalogServiceSpec, write: Write): void {
    const id = fold(spec.ID);
    const existing = record.services.get(id);
    if (existing !== undefined && sameService(existing, spec)) return;
    const entry: CatalogService = {
      ...serviceFields(spec),
      Node: record.node.Node,
      CreateIndex: existing?.CreateIndex ?? index,
      ModifyIndex: index,
    };
    // A renamed instance leaves its old name (which may go extinct); otherwise it is replaced in place.
    if (existing !== undefined && fold(existing.Service) !== fold(entry.Service)) this.removeInstance(index, existing, write);
    record.services.set(id, entry);
    this.addInstance(entry, index);
    this.servicesIdx = index;
    write.keys.add(WATCH_SERVICES);
    this.touchNode(index, record, write, false);
    this.touchService(index, entry.Service, write);
    // Service-level checks carry the service's name and tags.
    for (const check of [...record.checks.values()]) {
      if (check.ServiceID === '' || fold(check.ServiceID) !== id) continue;
      if (check.ServiceName === entry.Service && sameList(check.ServiceTags, entry.Tags)) continue;
      this.putCheck(index, record, { ...check, ServiceName: entry.Service, ServiceTags: entry.Tags, ModifyIndex: index }, check, write);
    }
  }

  private ensureCheck(index: number, record: NodeRecord, spec: CatalogCheckSpec, write: Write): void {
    const existing = record.checks.get(fold(spec.CheckID));
    const service = spec.ServiceID === '' ? undefined : record.services.get(fold(spec.ServiceID));
    const check: CatalogCheck = {
      ...checkFields(spec),
      // A service-level check takes the ID as the service spells it.
      ServiceID: service?.ID ?? spec.ServiceID,
      Node: record.node.Node,
      ServiceName: service?.Service ?? '',
      ServiceTags: service?.Tags ?? [],
      CreateIndex: existing?.CreateIndex ?? index,
      ModifyIndex: index,
    };
    if (existing !== undefined && sameCheck(existing, check)) return;
    this.putCheck(index, record, check, existing, write);
  }

  /** Stores a check (new or changed) and bumps every index that covers it. */
  private putCheck(index: number, record: NodeRecord, check: CatalogCheck, previous: CatalogCheck | undefined, write: Write): void {
    record.checks.set(fold(check.CheckID), check);
    this.checksIdx = index;
    write.keys.add(WATCH_CHECKS);
    this.touchNode(index, record, write, false);
    this.touchCheckServices(index, record, check, write);
    if (previous !== undefined && previous.ServiceID !== check.ServiceID) this.touchCheckServices(index, record, previous, write);
    if (check.Status === 'critical' && previous?.Status !== 'critical') write.criticalChecks.push({ node: record.node.Node, checkId: check.CheckID });
  }

  /** A node-level check counts for every service on the node; a service-level one for its service. */
  private touchCheckServices(index: number, record: NodeRecord, check: CatalogCheck, write: Write): void {
    if (check.ServiceID === '') {
      for (const service of record.services.values()) this.touchService(index, service.Service, write);
    } else if (check.ServiceName !== '') {
      this.touchService(index, check.ServiceName, write);
    }
  }

  private deleteService(index: number, record: NodeRecord, serviceKey: string, write: Write): void {
    const service = record.services.get(serviceKey);
    if (service === undefined) return;
    for (const [checkKey, check] of [...record.checks]) {
      if (check.ServiceID !== '' && fold(check.ServiceID) === serviceKey) {
        record.checks.delete(checkKey);
        this.checksIdx = index;
        write.keys.add(WATCH_CHECKS);
        write.deregisteredChecks.push({ node: record.node.Node, checkId: check.CheckID });
      }
    }
    record.services.delete(serviceKey);
    this.removeInstance(index, service, write);
    this.servicesIdx = index;
    write.keys.add(WATCH_SERVICES);
    this.touchNode(index, record, write, false);
  }

  private deleteCheck(index: number, record: NodeRecord, checkKey: string, write: Write): void {
    const check = record.checks.get(checkKey);
    if (check === undefined) return;
    record.checks.delete(checkKey);
    this.checksIdx = index;
    write.keys.add(WATCH_CHECKS);
    this.touchNode(index, record, write, false);
    this.touchCheckServices(index, record, check, write);
    write.deregisteredChecks.push({ node: record.node.Node, checkId: check.CheckID });
  }

  private deleteNode(index: number, record: NodeRecord, write: Write): void {
    for (const serviceKey of [...record.services.keys()]) this.deleteService(index, record, serviceKey, write);
    for (const checkKey of [...record.checks.keys()]) this.deleteCheck(index, record, checkKey, write);
    const nodeKey = fold(record.node.Node);
    this.nodeRecords.delete(nodeKey);
    if (record.node.ID !== '') this.nodeIds.delete(fold(record.node.ID));
    this.nodesIdx = index;
    write.keys.add(WATCH_NODES);
    write.keys.add(nodeWatchKey(record.node.Node));
    write.deregisteredNodes.push(record.node.Node);
  }

  /** The node (or something on it) changed; `nodeFieldsChanged` also moves the nodes index. */
  private touchNode(index: number, record: NodeRecord, write: Write, nodeFieldsChanged = true): void {
    record.index = index;
    write.keys.add(nodeWatchKey(record.node.Node));
    if (nodeFieldsChanged) {
      this.nodesIdx = index;
      write.keys.add(WATCH_NODES);
    }
  }

  private touchService(index: number, name: string, write: Write): void {
    const record = this.serviceNames.get(fold(name));
    if (record !== undefined) record.index = index;
    write.keys.add(serviceWatchKey(name));
  }

  private addInstance(service: CatalogService, index: number): void {
    const name = fold(service.Service);
    let record = this.serviceNames.get(name);
    if (record === undefined) {
      record = { index, instances: new Map(), sorted: null };
      this.serviceNames.set(name, record);
    }
    record.instances.set(instanceKey(service.Node, service.ID), service);
    record.sorted = null;
    if (index > record.index) record.index = index;
  }

  /** Removes an instance from its name's set; the last one makes the name extinct. */
  private removeInstance(index: number, service: CatalogService, write: Write): void {
    const name = fold(service.Service);
    const record = this.serviceNames.get(name);
    write.keys.add(serviceWatchKey(service.Service));
    if (record === undefined) return;
    record.instances.delete(instanceKey(service.Node, service.ID));
    record.sorted = null;
    record.index = index;
    if (record.instances.size === 0) {
      this.serviceNames.delete(name);
      this.lastExtinction = index;
    }
  }
}

function sortedValues<T>(map: Map<string, T>): T[] {
  return [...map.entries()].sort((a, b) => compareKeys(a[0], b[0])).map(([, v]) => v);
}

function nodeFields(spec: CatalogNodeSpec): CatalogNodeSpec {
  return { ID: spec.ID, Node: spec.Node, Address: spec.Address, Datacenter: spec.Datacenter, TaggedAddresses: spec.TaggedAddresses, Meta: spec.Meta };
}

function serviceFields(spec: CatalogServiceSpec): CatalogServiceSpec {
  return {
    ID: spec.ID,
    Service: spec.Service,
    Tags: spec.Tags,
    Address: spec.Address,
    Port: spec.Port,
    Meta: spec.Meta,
    EnableTagOverride: spec.EnableTagOverride,
    Weights: spec.Weights,
    TaggedAddresses: spec.TaggedAddresses,
    Dependencies: spec.Dependencies,
  };
}

function checkFields(spec: CatalogCheckSpec): CatalogCheckSpec {
  return {
    CheckID: spec.CheckID,
    Name: spec.Name,
    Status: spec.Status,
    Notes: spec.Notes,
    Output: spec.Output,
    ServiceID: spec.ServiceID,
    Type: spec.Type,
    Interval: spec.Interval,
    Timeout: spec.Timeout,
    Definition: spec.Definition,
  };
}

/** Consul's RegisterRequest.ChangesNode: any field differs (the name only by more than case). */
function nodeChanged(node: CatalogNode, spec: CatalogNodeSpec): boolean {
  return (
    node.ID !== spec.ID ||
    fold(node.Node) !== fold(spec.Node) ||
    node.Address !== spec.Address ||
    node.Datacenter !== spec.Datacenter ||
    !sameMap(node.TaggedAddresses, spec.TaggedAddresses) ||
    !sameMap(node.Meta, spec.Meta)
  );
}

function sameService(a: CatalogServiceSpec, b: CatalogServiceSpec): boolean {
  return (
    a.ID === b.ID &&
    a.Service === b.Service &&
    sameList(a.Tags, b.Tags) &&
    a.Address === b.Address &&
    a.Port === b.Port &&
    sameMap(a.Meta, b.Meta) &&
    a.EnableTagOverride === b.EnableTagOverride &&
    a.Weights.Passing === b.Weights.Passing &&
    a.Weights.Warning === b.Weights.Warning &&
    sameTaggedAddresses(a.TaggedAddresses, b.TaggedAddresses) &&
    sameList(a.Dependencies, b.Dependencies)
  );
}

function sameCheck(a: CatalogCheck, b: CatalogCheck): boolean {
  return (
    a.CheckID === b.CheckID &&
    a.Name === b.Name &&
    a.Status === b.Status &&
    a.Notes === b.Notes &&
    a.Output === b.Output &&
    a.ServiceID === b.ServiceID &&
    a.ServiceName === b.ServiceName &&
    sameList(a.ServiceTags, b.ServiceTags) &&
    a.Type === b.Type &&
    a.Interval === b.Interval &&
    a.Timeout === b.Timeout &&
    a.Node === b.Node &&
    JSON.stringify(a.Definition) === JSON.stringify(b.Definition)
  );
}

function sameList(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && a.every((v, i) => v === b[i]);
}

function sameMap(a: Readonly<Record<string, string>>, b: Readonly<Record<string, string>>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => Object.prototype.hasOwnProperty.call(b, k) && a[k] === b[k]);
}

function sameTaggedAddresses(a: Readonly<Record<string, ServiceAddressSpec>>, b: Readonly<Record<string, ServiceAddressSpec>>): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  return keys.every((k) => {
    const x = a[k];
    const y = Object.prototype.hasOwnProperty.call(b, k) ? b[k] : undefined;
    return x !== undefined && y !== undefined && x.Address === y.Address && x.Port === y.Port;
  });
}
