// The server's side of the agent RPC protocol (rpc/agent-protocol.ts: methods and their request and
// response types; docs/adr/0013-agent-mode.md). Client agents dial a server's RPC address
// (`--retry-join`) and call agent.servers, agent.apply, agent.nodeState and agent.heartbeat; the
// leader keeps each agent's node registered with Consul's serfHealth check and turns it critical when
// the heartbeats stop (Konsul has no serf; as in Consul's leader.go the leader owns serfHealth, not
// the agent). Refusals are KonsulErrors: their code travels back as the error response's code.
import { SERF_ALIVE_OUTPUT, SERF_FAILED_OUTPUT, serfCheck } from '../agent/core/node-registration.ts';
import { encodeCommand, validateCommand } from '../fsm/commands.ts';
import type { ProposeCommand } from '../fsm/command-results.ts';
import { isCatalogCommandType, type CatalogCommand, type CatalogNodeSpec } from '../fsm/state/catalog-commands.ts';
import { CONSUL_SERVICE_ID, SERF_CHECK_ID, type CatalogTable } from '../fsm/state/catalog.ts';
import { KonsulError, NO_LEADER_TEXT } from '../lib/errors.ts';
import {
  decodeAgentBody,
  encodeAgentBody,
  isAgentMethod,
  MAX_AGENT_BATCH,
  type AgentApplyOutcome,
  type AgentMethod,
  type AgentNodeState,
  type AgentResponse,
  type AgentServersAnswer,
  type HeartbeatAnswer,
} from '../rpc/agent-protocol.ts';
import type { ClusterService } from './cluster/cluster-service.ts';

export interface AgentRpcOptions {
  readonly selfId: string;
  readonly datacenter: string;
  readonly cluster: ClusterService & { propose: ProposeCommand; readBarrier(): Promise<void> };
  readonly catalog: CatalogTable;
  readonly isReadyLeader: () => boolean;
  /** Sends a request to another server's RPC address (heartbeats are forwarded to the leader). */
  readonly request: (address: string, method: string, body: Uint8Array) => Promise<Uint8Array>;
  /** An agent not heard from this long gets serfHealth critical (default 10 s, as servers). */
  readonly failAfterMs?: number;
  readonly log?: (level: 'warn' | 'info', message: string) => void;
}

/** Each method's handler; requests arrive unchecked (any agent version may send them). */
type Handlers = { readonly [M in AgentMethod]: (request: Record<string, unknown>, raw: Uint8Array) => Promise<AgentResponse<M>> };

export class AgentRpc {
  private readonly options: AgentRpcOptions;
  /** Leader only: when each agent node last sent a heartbeat (or when this server became leader). */
  private readonly lastSeen = new Map<string, number>();
  private timer: NodeJS.Timeout | null = null;
  private busy = false;

  constructor(options: AgentRpcOptions) {
    this.options = options;
  }

  handles(method: string): boolean {
    return isAgentMethod(method);
  }

  start(): void {
    this.timer = setInterval(() => void this.reapSilentAgents(Date.now()), 1000);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
  }

  private readonly handlers: Handlers = {
    'agent.servers': async () => this.servers(),
    'agent.apply': async (request) => ({ results: await this.apply(request) }),
    'agent.nodeState': (request) => this.nodeState(request),
    'agent.heartbeat': (request, raw) => this.heartbeat(request, raw),
  };

  async handle(method: string, body: Uint8Array): Promise<Uint8Array> {
    const request = parseBody(body);
    if (!isAgentMethod(method)) throw new KonsulError('badRequest', `unknown method ${method}`);
    return encodeAgentBody(await this.handlers[method](request, body));
  }

  private servers(): AgentServersAnswer {
    const { cluster } = this.options;
    return {
      datacenter: this.options.datacenter,
      leader: cluster.leaderId(),
      servers: cluster.servers().map((s) => ({ id: s.id, rpcAddr: s.rpcAddr, httpAddr: s.httpAddr, voter: s.voter })),
    };
  }

  private async apply(request: Record<string, unknown>): Promise<AgentApplyOutcome[]> {
    const commands = request['commands'];
    if (!Array.isArray(commands)) throw new KonsulError('badRequest', 'agent.apply needs a list of commands');
    if (commands.length > MAX_AGENT_BATCH) throw new KonsulError('badRequest', `agent.apply takes at most ${MAX_AGENT_BATCH} commands`);
    // Validated one by one: a bad command is refused alone, the batch's others still apply.
    return Promise.all(
      commands.map(async (command: unknown): Promise<AgentApplyOutcome> => {
        const type = (command as { type?: unknown } | null)?.type;
        if (!isCatalogCommandType(type)) return { ok: false, error: 'only catalog commands may be sent by an agent' };
        const problem = validateCommand(command);
        if (problem !== null) return { ok: false, error: `Invalid request: ${problem}` };
        try {
          const result = await this.options.cluster.propose(encodeCommand(command as CatalogCommand));
          return result.ok ? { ok: true } : { ok: false, error: 'error' in result ? result.error : 'refused' };
        } catch (err) {
          return { ok: false, error: (err as Error).message, unavailable: true };
        }
      }),
    );
  }

  private async nodeState(request: Record<string, unknown>): Promise<AgentNodeState> {
    const node = request['node'];
    if (typeof node !== 'string' || node === '') throw new KonsulError('badRequest', 'agent.nodeState needs a node name');
    await this.options.cluster.readBarrier();
    const { catalog } = this.options;
    const found = catalog.getNode(node);
    return {
      node: found ?? null,
      services: catalog.nodeServices(node),
      checks: catalog.nodeChecks(node),
      nodeCount: catalog.nodes().length,
      leader: this.options.cluster.leaderId(),
      server: this.options.selfId,
    };
  }

  /**
   * Answers the leader and what the catalog holds for the agent's node (whether the node was there,
   * and how many services and checks, serfHealth aside): an agent whose own counts differ (a wiped
   * or restored cluster, an entry deregistered on a server) runs a full sync at once instead of at
   * its next interval.
   */
  private async heartbeat(request: Record<string, unknown>, raw: Uint8Array): Promise<HeartbeatAnswer> {
    const node = request['node'] as CatalogNodeSpec | undefined;
    if (typeof node?.Node !== 'string' || node.Node === '' || typeof node.Address !== 'string') throw new KonsulError('badRequest', 'agent.heartbeat needs a node');
    const { cluster } = this.options;
    if (!this.options.isReadyLeader()) {
      const leader = cluster.leaderId();
      const address = leader ? cluster.rpcAddressOf(leader) : '';
      if (!address || leader === this.options.selfId) throw new KonsulError('noLeader', NO_LEADER_TEXT);
      return decodeAgentBody(await this.options.request(address, 'agent.heartbeat', raw)) as HeartbeatAnswer;
    }
    this.lastSeen.set(node.Node.toLowerCase(), Date.now());
    const { catalog } = this.options;
    const existing = catalog.getNode(node.Node);
    const serf = catalog.getCheck(node.Node, SERF_CHECK_ID);
    const sameNode = existing !== undefined && existing.Address === node.Address && existing.Datacenter === node.Datacenter;
    if (!sameNode || serf === undefined || serf.Status !== 'passing' || serf.Output !== SERF_ALIVE_OUTPUT) {
      const command: CatalogCommand = {
        type: 'catalogRegister',
        node: { ...node, Datacenter: this.options.datacenter },
        skipNodeUpdate: false,
        checks: [serfCheck('passing')],
      };
      const problem = validateCommand(command);
      if (problem !== null) throw new KonsulError('badRequest', `Invalid request: ${problem}`);
      await cluster.propose(encodeCommand(command));
    }
    return {
      leader: this.options.selfId,
      nodeMissing: existing === undefined,
      services: catalog.nodeServices(node.Node).length,
      checks: catalog.nodeChecks(node.Node).filter((c) => c.CheckID !== SERF_CHECK_ID).length,
    };
  }

  /** Leader only: agents silent for failAfterMs get serfHealth critical ("Agent not live or unreachable"). */
  async reapSilentAgents(nowMs: number): Promise<void> {
    if (!this.options.isReadyLeader()) {
      this.lastSeen.clear();
      return;
    }
    if (this.busy) return;
    this.busy = true;
    try {
      const { catalog } = this.options;
      const serverIds = new Set(this.options.cluster.servers().map((s) => s.id.toLowerCase()));
      for (const node of catalog.nodes()) {
        const key = node.Node.toLowerCase();
        if (serverIds.has(key) || catalog.getService(node.Node, CONSUL_SERVICE_ID) !== undefined) continue;
        const serf = catalog.getCheck(node.Node, SERF_CHECK_ID);
        if (serf === undefined) continue;
        // A new leader gives every agent a full period to reach it before judging it.
        const seen = this.lastSeen.get(key);
        if (seen === undefined) {
          this.lastSeen.set(key, nowMs);
          continue;
        }
        if (nowMs - seen < (this.options.failAfterMs ?? 10_000) || serf.Status === 'critical') continue;
        this.options.log?.('info', `catalog: agent ${node.Node} silent for ${Math.round((nowMs - seen) / 1000)}s, marking serfHealth critical`);
        await this.options.cluster.propose(encodeCommand({ type: 'catalogCheckStatus', node: node.Node, checkId: SERF_CHECK_ID, status: 'critical', output: SERF_FAILED_OUTPUT }));
      }
    } catch (err) {
      this.options.log?.('warn', `catalog: checking agents' heartbeats: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }
}

function parseBody(body: Uint8Array): Record<string, unknown> {
  if (body.length === 0) return {};
  let value: unknown;
  try {
    value = decodeAgentBody(body);
  } catch {
    throw new KonsulError('badRequest', 'the request body is not JSON');
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new KonsulError('badRequest', 'the request body must be a JSON object');
  return value as Record<string, unknown>;
}
