// What every route plugin is given: the server's configuration, its Raft host and state machine.
import type { RaftHost } from '../../raft/host/raft-host.ts';
import type { CommandResult, EncodedCommand } from '../../fsm/command-results.ts';
import type { Command } from '../../fsm/commands.ts';
import type { KonsulFsm } from '../../fsm/konsul-fsm.ts';
import type { ClusterService } from '../cluster/cluster-service.ts';
import type { ServerConfig } from '../config.ts';
import type { EventLoopLagMonitor } from '../event-loop-lag.ts';
import type { LocalAgent } from '../../agent/core/local-agent.ts';

/** The cluster as request handlers use it: membership and operations, plus the client paths. */
export interface ClusterAccess extends ClusterService {
  /**
   * Replicates a command (encodeCommand's bytes) through the leader, forwarded when this server
   * follows; answers what the FSM answered for that command (fsm/command-results.ts).
   */
  propose<C extends Command>(command: EncodedCommand<C>): Promise<CommandResult<C>>;
  /** Waits until this server's state is at least as new as any acknowledged write (ReadIndex). */
  readBarrier(): Promise<void>;
}

export interface ServerContext {
  readonly config: ServerConfig;
  readonly raft: RaftHost;
  readonly fsm: KonsulFsm;
  readonly cluster: ClusterAccess;
  readonly version: string;
  /** Aborted when the server shuts down: blocked queries answer at once. */
  readonly shutdownSignal: AbortSignal;
  /** The server's own agent (/v1/agent/service|check/*); absent in tests that build a bare app. */
  readonly localAgent?: LocalAgent;
  /** This process's event-loop lag (/v1/agent/self Stats.runtime); absent in tests that build a bare app. */
  readonly eventLoopLag?: EventLoopLagMonitor;
}
