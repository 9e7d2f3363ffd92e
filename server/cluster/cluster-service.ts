// What the HTTP routes and konsulctl see of the cluster: its members, leader, Raft progress and
// health, and the operations an operator may ask for (join, remove, transfer leadership, snapshot).
// Implemented by server/cluster/cluster-manager.ts on top of the Raft host and the RPC transport.
import { KonsulError, NO_LEADER_TEXT } from '../../lib/errors.ts';

/** A server of the Raft configuration (or one known but not yet a member). */
export interface ServerInfo {
  /** The Raft id, which is the server's node name. */
  readonly id: string;
  /** Server-to-server (RPC) address "host:port"; '' when not known yet. */
  readonly rpcAddr: string;
  /** HTTP API address "host:port"; '' when not known yet. */
  readonly httpAddr: string;
  /** A voter counts towards quorum; a non-voter (learner) only receives the log. */
  readonly voter: boolean;
  readonly leader: boolean;
}

/** Replication and contact figures of one server, as the leader (or this server) sees them. */
export interface PeerStats {
  readonly id: string;
  readonly rpcAddr: string;
  readonly voter: boolean;
  readonly leader: boolean;
  /** Highest log index known to match the leader's (leader's view); -1 when unknown. */
  readonly matchIndex: number;
  /** leader's last index − matchIndex; -1 when unknown. */
  readonly replicationLag: number;
  /** Milliseconds since the leader last heard from this server; -1 when never or unknown. */
  readonly lastContactMs: number;
  /** 'probe' | 'replicate' | 'snapshot' on the leader, '' elsewhere. */
  readonly replicationState: string;
  /** Reachable and answering within the autopilot threshold. */
  readonly healthy: boolean;
}

export interface ClusterStats {
  readonly id: string;
  readonly role: 'leader' | 'follower' | 'candidate' | 'preCandidate';
  readonly leaderId: string;
  readonly term: number;
  readonly commitIndex: number;
  readonly appliedIndex: number;
  readonly lastLogIndex: number;
  readonly lastSnapshotIndex: number;
  /** Milliseconds since this server heard from the leader (0 on the leader, -1 when never). */
  readonly lastContactMs: number;
  /** Index of the entry that last changed the membership. */
  readonly configurationIndex: number;
  /** Filled on the leader (per-peer figures from its replication progress); elsewhere only self. */
  readonly peers: readonly PeerStats[];
}

export interface AutopilotConfig {
  /** Remove voters that have been unreachable longer than deadServerAfterMs. */
  readonly cleanupDeadServers: boolean;
  readonly deadServerAfterMs: number;
  /** A server is unhealthy when the leader has not heard from it for this long. */
  readonly lastContactThresholdMs: number;
  /** Never remove a dead server when fewer than this many voters would remain. */
  readonly minQuorum: number;
}

/** Consul's /v1/operator/autopilot/health, in Konsul's camelCase (routes map it to the wire). */
export interface AutopilotHealth {
  readonly healthy: boolean;
  /** How many voters may fail while a quorum of healthy voters remains. */
  readonly failureTolerance: number;
  readonly servers: readonly {
    readonly id: string;
    readonly name: string;
    readonly rpcAddr: string;
    readonly leader: boolean;
    readonly voter: boolean;
    readonly healthy: boolean;
    readonly lastContactMs: number;
    readonly lastTerm: number;
    readonly lastIndex: number;
    /** ISO time since which the server has been in its current health state. */
    readonly stableSince: string;
  }[];
}

/**
 * Why a cluster operation failed: a KonsulError whose code gives the status (http/status.ts).
 * Operations that reach another server fail `unreachable` (502) when it could not be reached and
 * `timeout` (504) when it did not answer in time. `noLeader` carries Consul's exact text.
 */
export class ClusterError extends KonsulError {
  declare readonly code: 'notFound' | 'badRequest' | 'noLeader' | 'unreachable' | 'conflict' | 'timeout';
  constructor(code: ClusterError['code'], message: string) {
    // Clients (consul-template, Vault) match on Consul's no-leader text.
    super(code, code === 'noLeader' ? NO_LEADER_TEXT : message);
    this.name = 'ClusterError';
  }
}

export interface ClusterService {
  /** This server. */
  self(): ServerInfo;
  /** The leader's id, or '' while there is none. */
  leaderId(): string;
  /** The members of the latest Raft configuration, voters first, each with its addresses. */
  servers(): readonly ServerInfo[];
  /** Address lookup for any known server id ('' when unknown). */
  rpcAddressOf(id: string): string;
  configurationIndex(): number;
  stats(): ClusterStats;
  autopilotHealth(): AutopilotHealth;
  autopilotConfig(): AutopilotConfig;
  setAutopilotConfig(config: Partial<AutopilotConfig>): void;
  /** Adds the server answering at `rpcAddr` (learner first, then voter once caught up). Forwarded to the leader. */
  join(rpcAddr: string): Promise<ServerInfo>;
  /** Removes a server from the configuration, by id or RPC address. Forwarded to the leader. */
  remove(idOrAddress: { id?: string; address?: string }): Promise<void>;
  /** Moves leadership to `id` (or the most up-to-date voter); resolves with the new leader's id. */
  transferLeader(id?: string): Promise<string>;
  /** Takes a Raft snapshot on this server now (compacting its log); resolves with its index and term. */
  snapshotNow(): Promise<{ index: number; term: number }>;
}
