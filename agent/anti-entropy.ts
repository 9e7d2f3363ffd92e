// Anti-entropy in agent mode: the state machine of it is agent/core/local-agent.ts (shared with the agent
// embedded in every server: local state is the truth, every change is written at once, a periodic
// full sync scaled with the cluster's size repairs drift both ways, check status changes are
// coalesced into batches). This file supplies what differs on a client agent:
//
// - RemoteCatalogBackend: the catalog is reached through a server's RPC port (`agent.apply`,
//   `agent.nodeState`, rpc/agent-protocol.ts) with failover across servers (servers.ts);
// - Heartbeat: tells the leader (through any server) the agent is alive, so that the leader keeps the
//   agent's node and its serfHealth check, and learns the leader's identity: a new leader, or a
//   failover to another server, triggers a full sync at once, so a write lost in a leader change is
//   repaired within one round trip rather than one sync interval.
import type { CatalogCommand, CatalogNodeSpec } from '../fsm/state/catalog-commands.ts';
import { MAX_AGENT_BATCH, type AgentApplyOutcome } from '../rpc/agent-protocol.ts';
import type { LocalAgentBackend, NodeCatalogState } from './core/backend.ts';
import { RemoteRpcError, type ServerPool } from './servers.ts';

export class RemoteCatalogBackend implements LocalAgentBackend {
  private readonly pool: ServerPool;

  constructor(pool: ServerPool) {
    this.pool = pool;
  }

  async apply(commands: readonly CatalogCommand[]): Promise<AgentApplyOutcome[]> {
    const out: AgentApplyOutcome[] = [];
    for (let i = 0; i < commands.length; i += MAX_AGENT_BATCH) {
      const chunk = commands.slice(i, i + MAX_AGENT_BATCH);
      try {
        const answer = await this.pool.call('agent.apply', { commands: chunk }, 30_000);
        out.push(...answer.results);
      } catch (err) {
        // A server answered with an error for the whole batch (e.g. it is starting): retry later.
        if (err instanceof RemoteRpcError) out.push(...chunk.map(() => ({ ok: false, error: err.message, unavailable: true }) as const));
        else throw err;
      }
    }
    return out;
  }

  async nodeState(node: string): Promise<NodeCatalogState> {
    const state = await this.pool.call('agent.nodeState', { node }, 15_000);
    this.pool.noteLeader(state.leader);
    return { node: state.node, services: state.services, checks: state.checks, nodeCount: state.nodeCount };
  }
}

export interface HeartbeatOptions {
  readonly pool: ServerPool;
  readonly node: () => CatalogNodeSpec;
  readonly intervalMs: number;
  /** How many services and checks the agent has (compared with the catalog's counts in every answer). */
  readonly localCounts: () => { services: number; checks: number };
  /** The catalog's view of the node differs from the agent's (node missing, other counts). */
  readonly onDrift?: (why: string) => void;
  readonly log?: (level: 'warn' | 'info' | 'debug', message: string) => void;
}

export class Heartbeat {
  private readonly options: HeartbeatOptions;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private failing = false;
  private lastOkMs = 0;

  constructor(options: HeartbeatOptions) {
    this.options = options;
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      void this.beat().finally(() => {
        if (this.stopped) return;
        this.timer = setTimeout(loop, this.options.intervalMs);
        this.timer.unref();
      });
    };
    loop();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
  }

  /** When a heartbeat last reached the leader (0 = never). */
  lastOk(): number {
    return this.lastOkMs;
  }

  async beat(): Promise<void> {
    try {
      // Counted before the request: a registration racing the heartbeat must not look like drift.
      const local = this.options.localCounts();
      const answer = await this.options.pool.call('agent.heartbeat', { node: this.options.node() }, 5000);
      this.options.pool.noteLeader(answer.leader);
      const after = this.options.localCounts();
      const stable = after.services === local.services && after.checks === local.checks;
      if (answer.nodeMissing && this.lastOkMs !== 0) this.options.onDrift?.('the catalog had lost this node');
      else if (stable && (answer.services !== local.services || answer.checks !== local.checks)) {
        this.options.onDrift?.(`the catalog holds ${answer.services} services and ${answer.checks} checks for this node, the agent ${local.services} and ${local.checks}`);
      }
      this.lastOkMs = Date.now();
      if (this.failing) this.options.log?.('info', 'agent: heartbeats reach the leader again');
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.options.log?.('warn', `agent: heartbeat failed (retrying): ${(err as Error).message}`);
      this.failing = true;
    }
  }
}
