// A server's place in the cluster: it finds the other servers (retry-join), forms a new cluster
// once `bootstrap_expect` servers know each other, joins an existing one, forwards writes and
// membership operations to the leader, and answers the operator's questions (ClusterService).
//
// Every RPC exchange between servers starts with a `peers` report, so addresses spread the way
// gossip would spread them: knowing one member is enough to learn them all.
import type { CommandResult, EncodedCommand } from '../../fsm/command-results.ts';
import type { Command } from '../../fsm/commands.ts';
import type { ConfState } from '../../raft/core/types.ts';
import { ProposalError, ReadIndexError, type RaftHost } from '../../raft/host/raft-host.ts';
import type { AddressBook, ServerAddresses } from './address-book.ts';
import { Autopilot } from './autopilot.ts';
import {
  ClusterError,
  type AutopilotConfig,
  type AutopilotHealth,
  type ClusterService,
  type ClusterStats,
  type PeerStats,
  type ServerInfo,
} from './cluster-service.ts';

/** What the manager needs from the server-to-server transport. */
export interface ClusterTransport {
  request(address: string, method: string, body: Uint8Array, options?: { timeoutMs?: number; signal?: AbortSignal }): Promise<{ body: Uint8Array }>;
}

/** What a server tells another about itself and the servers it knows, in every `peers` exchange. */
export interface PeerReport {
  readonly id: string;
  readonly rpcAddr: string;
  readonly httpAddr: string;
  /** Its Raft log holds anything: it is, or was, a member of a cluster. */
  readonly initialized: boolean;
  readonly bootstrapExpect: number;
  /** The leader it follows ('' when none). */
  readonly leader: string;
  /** Voters and learners of its latest configuration. */
  readonly members: readonly string[];
  readonly known: readonly ServerAddresses[];
}

export interface ClusterManagerOptions {
  readonly id: string;
  readonly raft: RaftHost;
  readonly transport: ClusterTransport;
  readonly addresses: AddressBook;
  /** This server's advertised RPC address and its HTTP address (known once listening). */
  readonly rpcAddr: string;
  readonly httpAddr: () => string;
  readonly bootstrapExpect: number;
  readonly retryJoin: readonly string[];
  readonly holdTimeoutMs: number;
  readonly autopilot: AutopilotConfig;
  readonly log: (level: 'info' | 'warn', message: string) => void;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const json = (v: unknown): Uint8Array => encoder.encode(JSON.stringify(v));
const parse = <T>(b: Uint8Array): T => JSON.parse(decoder.decode(b)) as T;

/** Outcome-unknown failures of a forwarded write: the client must not assume it did or did not happen. */
const FORWARD_LOST = 'lost contact with the leader while forwarding the write; its outcome is unknown';

export class ClusterManager implements ClusterService {
  readonly id: string;
  private readonly raft: RaftHost;
  private readonly transport: ClusterTransport;
  private readonly addresses: AddressBook;
  private readonly options: ClusterManagerOptions;
  private readonly autopilot: Autopilot;
  private timer: NodeJS.Timeout | null = null;
  private stopped = false;
  private maintaining = false;
  /** Set when the leader removed this server on purpose: do not join again until restarted. */
  private left = false;
  private lastJoinAttemptMs = 0;
  private warnedOverExpect = false;

  constructor(options: ClusterManagerOptions) {
    this.options = options;
    this.id = options.id;
    this.raft = options.raft;
    this.transport = options.transport;
    this.addresses = options.addresses;
    this.autopilot = new Autopilot({ id: options.id, raft: options.raft, config: options.autopilot, log: options.log });
  }

  start(): void {
    this.addresses.learn({ id: this.id, rpcAddr: this.options.rpcAddr, httpAddr: this.options.httpAddr() });
    const run = (): void => {
      if (this.stopped) return;
      void this.maintain().finally(() => {
        if (this.stopped) return;
        // Look for peers often while forming or joining; once settled, a slow refresh is enough.
        const settled = this.raft.leader() !== '' && this.isMember(this.id);
        this.timer = setTimeout(run, settled ? 5000 : 250);
        this.timer.unref();
      });
    };
    run();
    this.autopilot.start();
  }

  stop(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.autopilot.stop();
  }

  // -------------------------------------------------------------------------------------------
  // Client requests: writes go to the leader, reads wait for a linearizable read point
  // -------------------------------------------------------------------------------------------

  /**
   * Replicates `command` through the leader and resolves with the state machine's result. While
   * there is no leader the write waits up to the hold timeout, then fails with "No cluster leader".
   */
  propose<C extends Command>(command: EncodedCommand<C>): Promise<CommandResult<C>> {
    // The one untyped step of the seam: Raft hands back whatever the FSM's apply answered for these bytes.
    return this.replicate(command) as Promise<CommandResult<C>>;
  }

  private async replicate(command: Uint8Array): Promise<unknown> {
    const deadline = Date.now() + this.options.holdTimeoutMs;
    for (;;) {
      if (this.raft.isLeader()) {
        try {
          return await this.raft.propose(command);
        } catch (err) {
          // Stepped down between the check and the proposal: nothing was appended, try the new leader.
          if (err instanceof ProposalError && err.reason === 'notLeader') {
            await this.awaitLeader(deadline);
            continue;
          }
          throw err;
        }
      }
      const leader = this.raft.leader();
      const address = leader ? this.rpcAddressOf(leader) : '';
      if (!address) {
        await this.awaitLeader(deadline);
        continue;
      }
      const forwarded = await this.forwardWrite(leader, address, command);
      if (forwarded.sent) return forwarded.result;
      // Nothing reached the leader (it is down, or was not the leader any more): wait for the next one.
      if (Date.now() >= deadline) throw new ProposalError('notLeader', 'No cluster leader');
      await this.awaitLeaderOtherThan(leader, deadline);
    }
  }

  /** Waits until a read in `default` or `consistent` mode may be served from the local state. */
  async readBarrier(): Promise<void> {
    const conf = this.raft.configuration();
    // A lone voter confirms nothing with anyone: its own applied state is linearizable.
    if (this.raft.isReadyLeader() && conf.voters.length === 1 && conf.voters[0] === this.id) return;
    const deadline = Date.now() + this.options.holdTimeoutMs;
    for (;;) {
      try {
        await this.raft.readIndex();
        return;
      } catch (err) {
        const retriable = err instanceof ReadIndexError && (err.reason === 'noLeader' || err.reason === 'leadershipLost');
        if (!retriable || Date.now() >= deadline) throw err;
        await this.awaitLeader(deadline);
        if (this.raft.leader() === '') throw new ReadIndexError('noLeader', 'No cluster leader');
      }
    }
  }

  private async forwardWrite(leader: string, address: string, command: Uint8Array): Promise<{ sent: boolean; result?: unknown }> {
    // If this server learns of another leader while the request is out, the old one cannot commit it.
    const abort = new AbortController();
    const unsubscribe = this.raft.onSoftState((s) => {
      if (s.lead !== leader) abort.abort();
    });
    try {
      const answer = await this.transport.request(address, 'propose', command, { timeoutMs: 30_000, signal: abort.signal });
      return { sent: true, result: parse<{ result: unknown }>(answer.body).result };
    } catch (err) {
      const code = (err as { code?: string }).code;
      const remoteCode = (err as { remoteCode?: string }).remoteCode;
      if (code === 'unreachable') return { sent: false };
      if (code === 'remote') {
        if (remoteCode === 'notLeader') return { sent: false };
        if (isProposalReason(remoteCode)) throw new ProposalError(remoteCode, (err as Error).message);
        throw err;
      }
      throw new ProposalError('outcomeUnknown', FORWARD_LOST);
    } finally {
      unsubscribe();
    }
  }

  private async awaitLeader(deadline: number): Promise<void> {
    const wait = deadline - Date.now();
    if (wait <= 0) throw new ProposalError('notLeader', 'No cluster leader');
    const leader = await this.raft.waitForLeader(wait);
    if (leader === '') throw new ProposalError('notLeader', 'No cluster leader');
  }

  /** After a forward that reached nobody: a moment for the leader to change (or its connection to come back). */
  private async awaitLeaderOtherThan(previous: string, deadline: number): Promise<void> {
    const until = Math.min(deadline, Date.now() + 100);
    while (Date.now() < until && this.raft.leader() === previous) await new Promise((r) => setTimeout(r, 10));
  }

  // -------------------------------------------------------------------------------------------
  // RPC handlers (server-to-server)
  // -------------------------------------------------------------------------------------------

  /** Answers a request from another server. Errors carry a `code` the caller acts on. */
  async handleRequest(method: string, body: Uint8Array): Promise<Uint8Array> {
    switch (method) {
      case 'peers': {
        this.learnFrom(parse<PeerReport>(body));
        return json(this.report());
      }
      case 'propose': {
        if (!this.raft.isLeader()) throw codedError('notLeader', 'not the leader');
        try {
          return json({ result: await this.raft.propose(body) });
        } catch (err) {
          if (err instanceof ProposalError) throw codedError(err.reason, err.message);
          throw err;
        }
      }
      case 'join':
        return json(await this.onLeader('join', body, (b) => this.addServer(parse<ServerAddresses>(b))));
      case 'remove':
        return json(await this.onLeader('remove', body, (b) => this.removeServer(parse<{ id: string }>(b).id)));
      case 'transferLeader':
        return json(await this.onLeader('transferLeader', body, (b) => this.transferHere(parse<{ id?: string }>(b).id)));
      case 'left':
        this.left = true;
        this.options.log('info', 'removed from the cluster by the leader; not joining again until restarted');
        return json({});
      default:
        throw codedError('badRequest', `unknown method ${method}`);
    }
  }

  /** Runs `action` if this server leads, else forwards the request to the leader. */
  private async onLeader<T>(method: string, body: Uint8Array, action: (body: Uint8Array) => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.options.holdTimeoutMs;
    for (;;) {
      if (this.raft.isLeader()) return action(body);
      const leader = this.raft.leader();
      const address = leader ? this.rpcAddressOf(leader) : '';
      if (!address) {
        await this.awaitLeader(deadline).catch(() => {
          throw new ClusterError('noLeader', 'No cluster leader');
        });
        continue;
      }
      try {
        const answer = await this.transport.request(address, method, body, { timeoutMs: 60_000 });
        return parse<T>(answer.body);
      } catch (err) {
        const remoteCode = (err as { remoteCode?: string }).remoteCode;
        if (remoteCode === 'notLeader' || (err as { code?: string }).code === 'unreachable') {
          if (Date.now() >= deadline) throw new ClusterError('noLeader', 'No cluster leader');
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        if (isClusterCode(remoteCode)) throw new ClusterError(remoteCode, (err as Error).message);
        throw err;
      }
    }
  }

  // -------------------------------------------------------------------------------------------
  // Leader-side membership changes
  // -------------------------------------------------------------------------------------------

  /** Adds a server as a learner; autopilot promotes it to voter once it has caught up. */
  private async addServer(server: ServerAddresses): Promise<ServerInfo> {
    if (!server.id || !server.rpcAddr) throw new ClusterError('badRequest', 'a joining server needs an id and an RPC address');
    this.addresses.learn(server);
    if (!this.isMember(server.id)) {
      this.options.log('info', `adding server ${server.id} (${server.rpcAddr}) as a non-voter until it catches up`);
      await this.changeMembership({ type: 'addLearner', node: server.id });
    }
    return this.infoOf(server.id);
  }

  private async removeServer(id: string): Promise<Record<string, never>> {
    if (!this.isMember(id)) throw new ClusterError('notFound', `no server with id "${id}" in the Raft configuration`);
    const address = this.rpcAddressOf(id);
    await this.changeMembership({ type: 'removeNode', node: id });
    this.options.log('info', `removed server ${id}`);
    // Tell a live server it was removed on purpose, so that it does not join again by itself.
    if (address && id !== this.id) void this.transport.request(address, 'left', json({}), { timeoutMs: 2000 }).catch(() => undefined);
    if (id === this.id) this.left = true;
    return {};
  }

  private async changeMembership(change: { type: 'addLearner' | 'addVoter' | 'removeNode'; node: string }): Promise<void> {
    // Only one change may be in flight; a concurrent one is retried briefly instead of failing.
    const deadline = Date.now() + 10_000;
    for (;;) {
      try {
        await this.raft.proposeConfChange(change);
        return;
      } catch (err) {
        const pending = err instanceof Error && /pending|in progress|uncommitted|not yet committed/i.test(err.message);
        if (!pending || Date.now() >= deadline) throw err;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  }

  private async transferHere(target: string | undefined): Promise<{ leader: string }> {
    const conf = this.raft.configuration();
    let to = target ?? '';
    if (to && !conf.voters.includes(to)) throw new ClusterError('notFound', `no voter with id "${to}" in the Raft configuration`);
    if (!to) {
      // The most up-to-date other voter takes over.
      const others = this.raft.status().progress.filter((p) => p.id !== this.id && !p.isLearner);
      others.sort((a, b) => b.match - a.match);
      to = others[0]?.id ?? '';
      if (!to) throw new ClusterError('conflict', 'no other voter to transfer leadership to');
    }
    if (to === this.id) return { leader: this.id };
    this.raft.transferLeader(to);
    const deadline = Date.now() + 5000;
    while (Date.now() < deadline) {
      const lead = this.raft.leader();
      if (lead === to) return { leader: to };
      await new Promise((r) => setTimeout(r, 20));
    }
    throw new ClusterError('timeout', `leadership did not move to ${to} within 5s`);
  }

  // -------------------------------------------------------------------------------------------
  // Finding peers, bootstrapping, joining
  // -------------------------------------------------------------------------------------------

  private report(): PeerReport {
    const conf = this.raft.configuration();
    return {
      id: this.id,
      rpcAddr: this.options.rpcAddr,
      httpAddr: this.options.httpAddr(),
      initialized: this.initialized(),
      bootstrapExpect: this.options.bootstrapExpect,
      leader: this.raft.leader(),
      members: [...conf.voters, ...conf.learners],
      known: this.addresses.all(),
    };
  }

  private learnFrom(report: PeerReport): void {
    if (report.id === this.id) return;
    this.addresses.learn({ id: report.id, rpcAddr: report.rpcAddr, httpAddr: report.httpAddr });
    for (const k of report.known) if (k.id !== this.id) this.addresses.learn(k);
  }

  private initialized(): boolean {
    const s = this.raft.status();
    return s.lastIndex > 0 || s.term > 0 && s.confState.voters.length > 0;
  }

  private isMember(id: string): boolean {
    const conf = this.raft.configuration();
    return conf.voters.includes(id) || conf.learners.includes(id);
  }

  /** One round of peer exchange, then bootstrap or join if that is due. */
  private async maintain(): Promise<void> {
    if (this.maintaining) return;
    this.maintaining = true;
    try {
      const targets = new Set<string>(this.options.retryJoin);
      for (const a of this.addresses.all()) if (a.id !== this.id) targets.add(a.rpcAddr);
      targets.delete(this.options.rpcAddr);
      const mine = json(this.report());
      const reports = await Promise.all(
        [...targets].map(async (address) => {
          try {
            const answer = await this.transport.request(address, 'peers', mine, { timeoutMs: 1000 });
            const report = parse<PeerReport>(answer.body);
            this.learnFrom(report);
            return report;
          } catch {
            return null;
          }
        }),
      );
      const answered = reports.filter((r): r is PeerReport => r !== null && r.id !== this.id);
      if (this.stopped) return;
      this.maybeBootstrap(answered);
      await this.maybeJoin(answered);
    } finally {
      this.maintaining = false;
    }
  }

  private maybeBootstrap(reports: readonly PeerReport[]): void {
    const expect = this.options.bootstrapExpect;
    if (expect === 0 || this.initialized()) return;
    // Someone already formed a cluster: join it instead of founding a second one.
    if (reports.some((r) => r.initialized)) return;
    const candidates = new Set([this.id, ...reports.filter((r) => r.bootstrapExpect === expect).map((r) => r.id)]);
    if (candidates.size < expect) return;
    if (candidates.size > expect) {
      if (!this.warnedOverExpect) {
        this.options.log('warn', `found ${candidates.size} servers but bootstrap_expect is ${expect}: not bootstrapping`);
        this.warnedOverExpect = true;
      }
      return;
    }
    const founders: ConfState = { voters: [...candidates].sort(), learners: [] };
    if (this.raft.bootstrap(founders)) this.options.log('info', `bootstrapped a new cluster with ${founders.voters.join(', ')}`);
  }

  private async maybeJoin(reports: readonly PeerReport[]): Promise<void> {
    if (this.left) return;
    // A cluster that does not count this server as a member, with a leader that can add it.
    const member = reports.find((r) => r.initialized && r.leader !== '');
    if (!member || member.members.includes(this.id)) return;
    if (this.initialized() && this.raft.leader() !== '' && this.isMember(this.id)) return;
    if (Date.now() - this.lastJoinAttemptMs < 1000) return;
    this.lastJoinAttemptMs = Date.now();
    try {
      const self: ServerAddresses = { id: this.id, rpcAddr: this.options.rpcAddr, httpAddr: this.options.httpAddr() };
      await this.transport.request(member.rpcAddr, 'join', json(self), { timeoutMs: 15_000 });
      this.options.log('info', `joined the cluster through ${member.id}`);
    } catch (err) {
      this.options.log('warn', `joining through ${member.id} failed: ${(err as Error).message}`);
    }
  }

  // -------------------------------------------------------------------------------------------
  // ClusterService
  // -------------------------------------------------------------------------------------------

  self(): ServerInfo {
    return this.infoOf(this.id);
  }

  leaderId(): string {
    return this.raft.leader();
  }

  servers(): readonly ServerInfo[] {
    const conf = this.raft.configuration();
    return [...conf.voters, ...conf.learners].map((id) => this.infoOf(id));
  }

  rpcAddressOf(id: string): string {
    if (id === this.id) return this.options.rpcAddr;
    return this.addresses.get(id)?.rpcAddr ?? '';
  }

  configurationIndex(): number {
    return this.raft.configurationIndex();
  }

  stats(): ClusterStats {
    const s = this.raft.status();
    const conf = s.confState;
    const progress = new Map(s.progress.map((p) => [p.id, p]));
    const peers: PeerStats[] = [...conf.voters, ...conf.learners].map((id) => {
      const p = progress.get(id);
      const self = id === this.id;
      const lastContactMs = self ? 0 : id === s.lead ? this.raft.lastContactMs() : this.raft.lastHeardFromMs(id);
      return {
        id,
        rpcAddr: this.rpcAddressOf(id),
        voter: conf.voters.includes(id),
        leader: id === s.lead,
        matchIndex: self ? s.lastIndex : (p?.match ?? -1),
        replicationLag: self ? 0 : p ? Math.max(0, s.lastIndex - p.match) : -1,
        lastContactMs,
        replicationState: p ? p.state : '',
        healthy: this.autopilot.isHealthy(id),
      };
    });
    return {
      id: this.id,
      role: s.role,
      leaderId: s.lead,
      term: s.term,
      commitIndex: s.commit,
      appliedIndex: this.raft.applied(),
      lastLogIndex: s.lastIndex,
      lastSnapshotIndex: this.raft.lastSnapshotIndex(),
      lastContactMs: this.raft.lastContactMs(),
      configurationIndex: this.raft.configurationIndex(),
      peers,
    };
  }

  autopilotHealth(): AutopilotHealth {
    return this.autopilot.health((id) => this.rpcAddressOf(id));
  }

  autopilotConfig(): AutopilotConfig {
    return this.autopilot.config();
  }

  setAutopilotConfig(config: Partial<AutopilotConfig>): void {
    this.autopilot.setConfig(config);
  }

  async join(rpcAddr: string): Promise<ServerInfo> {
    // Ask the server itself who it is, then have the leader add it.
    let report: PeerReport;
    try {
      const answer = await this.transport.request(rpcAddr, 'peers', json(this.report()), { timeoutMs: 3000 });
      report = parse<PeerReport>(answer.body);
    } catch (err) {
      throw new ClusterError('unreachable', `cannot reach a Konsul server at ${rpcAddr}: ${(err as Error).message}`);
    }
    this.learnFrom(report);
    const server: ServerAddresses = { id: report.id, rpcAddr: report.rpcAddr, httpAddr: report.httpAddr };
    return this.onLeader('join', json(server), (b) => this.addServer(parse<ServerAddresses>(b)));
  }

  async remove(target: { id?: string; address?: string }): Promise<void> {
    let id = target.id ?? '';
    if (!id && target.address) {
      id = this.addresses.idAt(target.address) ?? '';
      if (!id) throw new ClusterError('notFound', `no server with address "${target.address}" in the Raft configuration`);
    }
    if (!id) throw new ClusterError('badRequest', 'a server id or address is required');
    await this.onLeader('remove', json({ id }), (b) => this.removeServer(parse<{ id: string }>(b).id));
  }

  async transferLeader(id?: string): Promise<string> {
    const answer = await this.onLeader('transferLeader', json(id ? { id } : {}), (b) => this.transferHere(parse<{ id?: string }>(b).id));
    return answer.leader;
  }

  snapshotNow(): Promise<{ index: number; term: number }> {
    return this.raft.snapshotNow();
  }

  private infoOf(id: string): ServerInfo {
    const conf = this.raft.configuration();
    const known = this.addresses.get(id);
    return {
      id,
      rpcAddr: this.rpcAddressOf(id),
      httpAddr: id === this.id ? this.options.httpAddr() : (known?.httpAddr ?? ''),
      voter: conf.voters.includes(id),
      leader: this.raft.leader() === id,
    };
  }
}

function codedError(code: string, message: string): Error {
  return Object.assign(new Error(message), { code });
}

function isProposalReason(code: string | undefined): code is ProposalError['reason'] {
  return code === 'leadershipLost' || code === 'outcomeUnknown' || code === 'overwritten' || code === 'stopped' || code === 'transferInProgress' || code === 'notLeader';
}

function isClusterCode(code: string | undefined): code is ClusterError['code'] {
  return code === 'notFound' || code === 'badRequest' || code === 'noLeader' || code === 'unreachable' || code === 'conflict' || code === 'timeout';
}
