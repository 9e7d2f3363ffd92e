// The leader keeps every Raft member registered in the catalog as Consul's leader does for its serf
// members (agent/consul/leader.go handleAliveMember / handleFailedMember / handleLeftMember): the
// server's node, the "consul" service, and the "serfHealth" node check, which session creation binds
// to by default. A member the leader has not heard from for `failAfterMs` gets serfHealth critical
// ("Agent not live or unreachable"), which invalidates the sessions bound to it; a server that left
// the configuration is deregistered with everything on its node.
//
// Konsul has no serf: liveness is the leader's view of Raft contact (autopilot health). Every round
// compares the desired registrations with the catalog and proposes only what differs, so a settled
// cluster writes nothing.
import { encodeCommand } from '../fsm/commands.ts';
import type { ProposeCommand } from '../fsm/command-results.ts';
import type { CatalogRegisterCommand, CatalogServiceSpec } from '../fsm/state/catalog-commands.ts';
import { CONSUL_SERVICE_ID, SERF_CHECK_ID, type CatalogTable } from '../fsm/state/catalog.ts';
import { catalogNodeSpec, serfCheck } from '../agent/core/node-registration.ts';
import { hostPortOf } from '../lib/host-port.ts';
import type { ClusterService, ServerInfo } from './cluster/cluster-service.ts';
import { isWildcard } from './config.ts';

/** A server's catalog address: its HTTP host, else (unknown or a wildcard) its RPC host. */
export function serverAddress(info: Pick<ServerInfo, 'httpAddr' | 'rpcAddr'>, httpHostFallback = ''): string {
  const http = hostPortOf(info.httpAddr).host || httpHostFallback;
  if (http !== '' && !isWildcard(http)) return http;
  return hostPortOf(info.rpcAddr).host || '127.0.0.1';
}

export interface ServerRegistrationOptions {
  readonly cluster: ClusterService & { propose: ProposeCommand };
  readonly isReadyLeader: () => boolean;
  readonly catalog: CatalogTable;
  readonly selfId: string;
  readonly datacenter: string;
  readonly version: string;
  /** This server's configured HTTP host, used for itself until its listener address is known. */
  readonly selfHttpHost: string;
  readonly intervalMs?: number;
  readonly failAfterMs?: number;
  readonly log?: (level: 'warn' | 'info', message: string) => void;
}

export class ServerRegistration {
  private readonly options: ServerRegistrationOptions;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  /** When each member was first seen unhealthy (leader-local time), cleared when healthy again. */
  private readonly unhealthySince = new Map<string, number>();

  constructor(options: ServerRegistrationOptions) {
    this.options = options;
  }

  start(): void {
    const every = this.options.intervalMs ?? 1000;
    this.timer = setInterval(() => void this.reconcile(Date.now()), every);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }

  /**
   * Resolves once this server's own serfHealth check is in the local catalog (a dev server waits for
   * it before serving, so sessions can be created right away), or after `timeoutMs`.
   */
  async waitForSelf(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      if (this.options.catalog.checkStatus(this.options.selfId, SERF_CHECK_ID) !== undefined) return true;
      await this.reconcile(Date.now());
      await new Promise((resolve) => setTimeout(resolve, 25));
    }
    return this.options.catalog.checkStatus(this.options.selfId, SERF_CHECK_ID) !== undefined;
  }

  /** One round, on the leader only: register what is missing or stale, deregister servers that left. */
  async reconcile(nowMs: number): Promise<void> {
    if (this.busy || !this.options.isReadyLeader()) return;
    this.busy = true;
    try {
      const { cluster, catalog } = this.options;
      const members = cluster.servers();
      const health = new Map(cluster.autopilotHealth().servers.map((s) => [s.id, s.healthy]));
      for (const member of members) {
        const alive = this.isAlive(member.id, health.get(member.id) ?? true, nowMs);
        const command = this.desired(member, alive);
        if (!this.isCurrent(command)) await this.propose(command);
      }
      const ids = new Set(members.map((m) => m.id.toLowerCase()));
      for (const node of catalog.nodes()) {
        if (ids.has(node.Node.toLowerCase())) continue;
        const consul = catalog.getService(node.Node, CONSUL_SERVICE_ID);
        if (consul === undefined || consul.Service !== 'consul') continue;
        this.options.log?.('info', `catalog: deregistering server ${node.Node}, which left the cluster`);
        await this.propose({ type: 'catalogDeregister', node: node.Node });
      }
      for (const id of this.unhealthySince.keys()) if (!ids.has(id.toLowerCase())) this.unhealthySince.delete(id);
    } catch (err) {
      this.options.log?.('warn', `catalog: registering servers: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private isAlive(id: string, healthy: boolean, nowMs: number): boolean {
    if (id === this.options.selfId || healthy) {
      this.unhealthySince.delete(id);
      return true;
    }
    const since = this.unhealthySince.get(id) ?? nowMs;
    this.unhealthySince.set(id, since);
    return nowMs - since < (this.options.failAfterMs ?? 10_000);
  }

  private desired(member: ServerInfo, alive: boolean): CatalogRegisterCommand {
    const self = member.id === this.options.selfId;
    const address = serverAddress(member, self ? this.options.selfHttpHost : '');
    const service: CatalogServiceSpec = {
      ID: CONSUL_SERVICE_ID,
      Service: 'consul',
      Tags: [],
      Address: '',
      Port: hostPortOf(member.rpcAddr).port,
      Meta: { non_voter: String(!member.voter), raft_version: '3', version: this.options.version },
      EnableTagOverride: false,
      Weights: { Passing: 1, Warning: 1 },
      TaggedAddresses: {},
      Dependencies: [],
    };
    return { type: 'catalogRegister', node: catalogNodeSpec(member.id, address, this.options.datacenter), skipNodeUpdate: false, service, checks: [serfCheck(alive ? 'passing' : 'critical')] };
  }

  /** True when the catalog already holds exactly this registration. */
  private isCurrent(command: CatalogRegisterCommand): boolean {
    const { catalog } = this.options;
    const node = catalog.getNode(command.node.Node);
    if (node === undefined) return false;
    const sameNode =
      node.Address === command.node.Address &&
      node.ID === command.node.ID &&
      node.Datacenter === command.node.Datacenter &&
      JSON.stringify(sorted(node.TaggedAddresses)) === JSON.stringify(sorted(command.node.TaggedAddresses)) &&
      JSON.stringify(sorted(node.Meta)) === JSON.stringify(sorted(command.node.Meta));
    const service = catalog.getService(command.node.Node, CONSUL_SERVICE_ID);
    const wanted = command.service!;
    const sameService =
      service !== undefined && service.Service === wanted.Service && service.Port === wanted.Port && JSON.stringify(sorted(service.Meta)) === JSON.stringify(sorted(wanted.Meta));
    const check = catalog.getCheck(command.node.Node, SERF_CHECK_ID);
    const wantedCheck = command.checks[0]!;
    const sameCheck = check !== undefined && check.Status === wantedCheck.Status && check.Output === wantedCheck.Output && check.Name === wantedCheck.Name && check.ServiceID === '';
    return sameNode && sameService && sameCheck;
  }

  private async propose(command: CatalogRegisterCommand | { type: 'catalogDeregister'; node: string }): Promise<void> {
    const result = await this.options.cluster.propose(encodeCommand(command));
    if (!result.ok) this.options.log?.('warn', `catalog: ${command.type} ${command.node}: ${result.error}`);
  }
}

function sorted(map: Readonly<Record<string, string>>): [string, string][] {
  return Object.entries(map).sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** The server's own node name is its Raft id; re-exported for the agent. */
export type { ServerInfo };
