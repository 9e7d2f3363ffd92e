// What every route plugin is given: the server's configuration, its Raft host and state machine.
import type { RaftHost } from '../../raft/host/raft-host.ts';
import type { KonsulFsm } from '../../fsm/konsul-fsm.ts';
import type { ServerConfig } from '../config.ts';

export interface ServerContext {
  readonly config: ServerConfig;
  readonly raft: RaftHost;
  readonly fsm: KonsulFsm;
  /** The server-to-server address of a Raft member, as /v1/status answers it. */
  readonly serverAddress: (nodeId: string) => string;
  readonly version: string;
  /** Aborted when the server shuts down: blocked queries answer at once. */
  readonly shutdownSignal: AbortSignal;
}
