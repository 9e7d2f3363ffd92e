// Runs one seed: a safety phase under faults (lossy, duplicating, reordering network; partitions;
// crashes with lost writes; membership changes; snapshots) followed by a liveness phase in which
// the faults stop, the network heals and crashed nodes come back, and the cluster must then elect
// a leader and commit a fresh proposal and everything still pending on every live member within a
// bounded number of ticks. Every invariant is checked as events happen; the first violation (or
// RaftInvariantError from the core) ends the run.
import { NotLeaderError, RaftError, RaftInvariantError } from '../core/errors.ts';
import { Prng } from '../core/prng.ts';
import type { UnsafeMutations } from '../core/raft.ts';
import type { ConfChange, ConfChangeType, ConfState, Message, NodeId } from '../core/types.ts';
import { MemoryStorage } from '../storage/memory-storage.ts';
import { ClientHistory, SafetyChecker, SimViolation } from './checkers.ts';
import type { LeaderView, Proposal, ViolationKind } from './checkers.ts';
import { Network } from './network.ts';
import type { InFlight, PartitionKind } from './network.ts';
import { deriveProfile, describeProfile } from './profile.ts';
import type { FaultProfile, ProfileName } from './profile.ts';
import { SimNode } from './sim-node.ts';
import type { NodeEnv } from './sim-node.ts';
import { messageTypeCode, Trace } from './trace.ts';

export interface SimOptions {
  readonly seed: number;
  /** Initial voters. */
  readonly nodes: number;
  readonly profile?: ProfileName;
  readonly mutations?: UnsafeMutations;
  /** How many of the last trace events a result keeps (for failure reports). */
  readonly traceTail?: number;
  /** Receives every trace event as it happens. */
  readonly verbose?: (line: string) => void;
}

/** All counters at zero. */
export function emptySimStats(): SimStats {
  return {
    ticks: 0,
    delivered: 0,
    dropped: 0,
    leaders: 0,
    proposals: 0,
    acked: 0,
    abandoned: 0,
    unknown: 0,
    reads: 0,
    readsServed: 0,
    readsFailed: 0,
    crashes: 0,
    partitions: 0,
    confChangesProposed: 0,
    confChangesRefused: 0,
    removals: 0,
    configSplits: 0,
    snapshotsSent: 0,
    livenessTicks: 0,
  };
}

export interface SimStats {
  ticks: number;
  delivered: number;
  dropped: number;
  leaders: number;
  proposals: number;
  acked: number;
  abandoned: number;
  unknown: number;
  reads: number;
  readsServed: number;
  readsFailed: number;
  crashes: number;
  partitions: number;
  /** Membership changes the leader accepted, those it refused, and removals that committed. */
  confChangesProposed: number;
  confChangesRefused: number;
  removals: number;
  /** Cuts between the members holding one of the leader's entries (configuration, first of its term) and the others. */
  configSplits: number;
  snapshotsSent: number;
  livenessTicks: number;
}

export interface SimResult {
  readonly seed: number;
  readonly nodes: number;
  readonly profile: FaultProfile;
  readonly profileText: string;
  readonly ok: boolean;
  readonly traceHash: string;
  readonly violation: { readonly kind: ViolationKind; readonly message: string } | null;
  readonly tail: readonly string[];
  readonly stats: SimStats;
}

const KEYS = 8;
/** Liveness allowance per backlogged entry: generous even for one entry per message and one message in flight. */
const LIVENESS_TICKS_PER_ENTRY = 4;
const CLIENTS = 3;
const PARTITION_KINDS: readonly PartitionKind[] = ['split', 'oneWay', 'isolateNode', 'isolateLeader'];

/** What a failing run prints: the seed, its profile, the violation, the last trace events, the replay command. */
export function failureReport(r: SimResult, mutation: string | null): string {
  const lines = [
    `FAILED seed=${r.seed} nodes=${r.nodes} profile=${r.profile.name}${mutation ? ` mutation=${mutation}` : ''}`,
    r.profileText,
    `violation: ${r.violation?.message ?? 'none'}`,
    `last ${r.tail.length} trace events:`,
    ...r.tail.map((line) => `  ${line}`),
    `replay: ${replayCommand(r.seed, r.nodes, r.profile.name, mutation)}`,
  ];
  return lines.join('\n');
}

/** The one-line command that replays a run with its full trace. */
export function replayCommand(seed: number, nodes: number, profile: ProfileName, mutation: string | null): string {
  const parts = ['npm run sim --', `--seed ${seed}`, `--nodes ${nodes}`];
  if (profile !== 'generic') parts.push(`--profile ${profile}`);
  if (mutation) parts.push(`--mutation ${mutation}`);
  parts.push('--verbose');
  return parts.join(' ');
}

export function runSimulation(options: SimOptions): SimResult {
  return new Simulation(options).run();
}

class Simulation implements NodeEnv {
  readonly profile: FaultProfile;
  readonly checker: SafetyChecker;
  readonly history = new ClientHistory();
  readonly trace: Trace;
  readonly prng: Prng;
  readonly mutations: UnsafeMutations | undefined;
  private readonly seed: number;
  private readonly traceTail: number;
  private readonly chaos: Prng;
  private readonly workload: Prng;
  private readonly nodeSeeds: Prng;
  private readonly network: Network;
  private readonly nodes: SimNode[] = [];
  private readonly numberOf = new Map<NodeId, number>();
  private time = 0;
  private healAt = -1;
  /** Each client's guess of the leader (a node number, -1 for none). */
  private readonly clientHints: number[] = [];
  private nextCommand = 1;
  private nextRead = 1;
  private readonly handledRemovals = new Set<number>();
  private stopQueue: number[] = [];
  private fresh: Proposal | null = null;
  private readonly stats: SimStats = emptySimStats();
  /** The operator: the highest leader term it has seen, and until when it retries a requested change. */
  private operatorTerm = 0;
  private confRequestUntil = -1;
  /** The requested change is autopilot's: remove a voter the leader cannot reach. */
  private removeUnreachable = false;
  /** A leader to crash or isolate soon after it accepted a membership change. */
  private disruption: { readonly at: number; readonly node: number; readonly term: number } | null = null;
  /** A disrupted leader waiting to come back; `cut` while the network cut is still the one isolating it. */
  private disrupted: { readonly node: number; readonly term: number; cut: boolean } | null = null;
  /** The entries (index/term) the network was split on, each at most once. */
  private readonly configSplitsDone = new Set<string>();

  constructor(options: SimOptions) {
    this.seed = options.seed;
    this.mutations = options.mutations;
    this.traceTail = options.traceTail ?? 40;
    // One seed derives everything, each component from its own stream so that they stay independent.
    const root = new Prng(options.seed);
    this.profile = deriveProfile(options.profile ?? 'generic', options.nodes, root.fork());
    this.prng = root.fork();
    this.chaos = root.fork();
    this.workload = root.fork();
    this.nodeSeeds = root.fork();
    this.network = new Network(root.fork(), this.profile, this.profile.nodes + this.profile.spares);
    this.trace = new Trace(Math.max(this.traceTail, 1), (n) => this.nodes[n]?.id ?? `#${n}`, options.verbose);
    if (options.verbose) options.verbose(`seed=${options.seed}\n${describeProfile(this.profile)}`);
    this.checker = new SafetyChecker(() => this.leaders());
    const total = this.profile.nodes + this.profile.spares;
    const voters: NodeId[] = [];
    for (let i = 0; i < this.profile.nodes; i++) voters.push(`n${i + 1}`);
    for (let i = 0; i < total; i++) {
      const id = `n${i + 1}`;
      // Founders start with the bootstrap membership in their log; the others with an empty disk.
      const storage = new MemoryStorage(i < this.profile.nodes ? { voters, learners: [] } : { voters: [], learners: [] });
      this.nodes.push(new SimNode(id, i, this, storage));
      this.numberOf.set(id, i);
    }
    for (let c = 0; c < CLIENTS; c++) this.clientHints.push(-1);
  }

  // NodeEnv ------------------------------------------------------------------------------------

  now(): number {
    return this.time;
  }

  nodeRandom(): Prng {
    return this.nodeSeeds.fork();
  }

  nodeNumber(id: NodeId): number {
    return this.numberOf.get(id) ?? -1;
  }

  send(from: SimNode, message: Message): void {
    const to = this.nodeNumber(message.to);
    if (to < 0) throw new SimViolation('hostContract', `${from.id} sends ${message.type} to unknown node '${message.to}'`);
    if (message.type === 'snap') this.stats.snapshotsSent++;
    const flight: InFlight = { message, from: from.num, to, fromIncarnation: from.incarnation };
    if (this.network.send(this.time, flight)) {
      const [index, extra] = messageFields(message);
      this.trace.event(this.time, 'duplicate', to, from.num, messageTypeCode(message.type), message.term, index, extra);
    }
  }

  confChangeApplied(_node: SimNode, index: number, change: ConfChange): void {
    if (change.type !== 'removeNode' || this.handledRemovals.has(index)) return;
    this.handledRemovals.add(index);
    this.stats.removals++;
    // A removed server may be shut down; done at the next tick, not inside another node's Ready.
    if (this.chaos.chance(this.profile.stopRemovedChance)) this.stopQueue.push(this.nodeNumber(change.node));
  }

  // Running ------------------------------------------------------------------------------------

  run(): SimResult {
    let violation: SimViolation | null = null;
    try {
      for (let i = 0; i < this.profile.nodes; i++) this.nodes[i]!.boot();
      while (this.time < this.profile.safetyTicks) this.step(true);
      // The bound grows with the work left: every entry some node still has to receive or apply.
      const bound = this.profile.livenessTicks + LIVENESS_TICKS_PER_ENTRY * this.backlog();
      this.startLiveness();
      const deadline = this.time + bound;
      let unmet: string | null = 'not checked yet';
      while (this.time < deadline) {
        this.step(false);
        unmet = this.livenessUnmet();
        if (unmet === null) break;
      }
      this.stats.livenessTicks = this.time - this.profile.safetyTicks;
      if (unmet !== null) throw new SimViolation('liveness', `after ${bound} ticks without faults: ${unmet}${this.describeLeader()}`);
      this.history.checkAcked(this.checker);
    } catch (err) {
      violation = asViolation(err);
      this.trace.event(this.time, 'violation', -1, 0, 0, 0, 0, 0, violation.message);
    }
    const h = this.history;
    Object.assign(this.stats, {
      ticks: this.time,
      leaders: this.checker.leadersElected,
      proposals: h.proposals,
      acked: h.acked.length,
      abandoned: h.abandoned,
      unknown: h.unknown,
      reads: h.reads,
      readsServed: h.readsServed,
      readsFailed: h.readsFailed,
    });
    return {
      seed: this.seed,
      nodes: this.profile.nodes,
      profile: this.profile,
      profileText: describeProfile(this.profile),
      ok: violation === null,
      traceHash: this.trace.hash(),
      violation: violation ? { kind: violation.kind, message: violation.message } : null,
      tail: this.trace.tail(this.traceTail),
      stats: this.stats,
    };
  }

  private step(faulty: boolean): void {
    this.time++;
    if (faulty) {
      this.faults();
      this.operator();
      this.clients();
    } else {
      this.driveLiveness();
    }
    for (const flight of this.network.due(this.time)) this.deliver(flight);
    const order = this.nodes.filter((n) => n.running);
    for (let i = order.length - 1; i > 0; i--) {
      const j = this.chaos.int(i + 1);
      [order[i], order[j]] = [order[j]!, order[i]!];
    }
    for (const node of order) if (node.running) node.tick();
  }

  private deliver(flight: InFlight): void {
    const m = flight.message;
    const to = this.nodes[flight.to]!;
    const [index, extra] = messageFields(m);
    const type = messageTypeCode(m.type);
    const reason = to.running ? this.network.lossReason(flight) : 'down';
    if (reason !== null) {
      this.stats.dropped++;
      this.trace.event(this.time, 'drop', flight.to, flight.from, type, m.term, index, reason === 'down' ? 0 : reason === 'partition' ? 1 : 2);
      if (m.type === 'snap') this.reportSnapshot(flight, false);
      else if (m.type === 'app' && reason !== 'loss' && this.profile.reportUnreachable) this.reportUnreachable(flight);
      return;
    }
    this.stats.delivered++;
    this.trace.event(this.time, 'deliver', flight.to, flight.from, type, m.term, index, extra);
    to.step(m);
    if (m.type === 'snap') this.reportSnapshot(flight, true);
  }

  /** The sender's process learns whether its snapshot stream got through (only the same incarnation). */
  private reportSnapshot(flight: InFlight, ok: boolean): void {
    const sender = this.nodes[flight.from]!;
    if (!sender.running || sender.incarnation !== flight.fromIncarnation) return;
    this.trace.event(this.time, 'snapReport', flight.from, flight.to, ok ? 1 : 0);
    sender.raw!.reportSnapshot(flight.message.to, ok);
    sender.afterCall();
    sender.process();
  }

  private reportUnreachable(flight: InFlight): void {
    const sender = this.nodes[flight.from]!;
    if (!sender.running || sender.incarnation !== flight.fromIncarnation) return;
    this.trace.event(this.time, 'unreachable', flight.from, flight.to);
    sender.raw!.reportUnreachable(flight.message.to);
    sender.afterCall();
    sender.process();
  }

  // Faults -------------------------------------------------------------------------------------

  private faults(): void {
    const p = this.profile;
    const chaos = this.chaos;
    for (const n of this.stopQueue) {
      const node = this.nodes[n]!;
      if (node.running) node.crash(true);
      else if (node.status === 'crashed') {
        node.status = 'stopped';
        node.restartAt = -1;
      }
    }
    this.stopQueue = [];
    for (const node of this.nodes) if (node.status === 'crashed' && node.restartAt >= 0 && node.restartAt <= this.time) node.boot();

    if (this.network.partitioned()) {
      if (this.time >= this.healAt) {
        this.network.heal();
        if (this.disrupted !== null) this.disrupted.cut = false;
        this.trace.event(this.time, 'heal', -1);
      }
    } else if (chaos.chance(p.partitionChance)) {
      const kind = PARTITION_KINDS[chaos.int(PARTITION_KINDS.length)]!;
      const members = this.nodes.filter((n) => n.status !== 'absent').map((n) => n.num);
      const described = this.network.partition(kind, members, this.leader()?.num ?? -1, (n) => this.nodes[n]!.id);
      if (described !== null) {
        this.stats.partitions++;
        this.healAt = this.time + p.partitionMinTicks + chaos.int(p.partitionMaxTicks - p.partitionMinTicks + 1);
        this.trace.event(this.time, 'partition', -1, 0, 0, 0, 0, 0, described);
      }
    }

    if (this.disruption !== null && this.disruption.at <= this.time) this.disrupt(this.disruption);
    if (this.disrupted !== null) this.returnDisrupted();
    if (p.configSplitChance > 0 || p.divergentSplitChance > 0) this.maybeSplitConfigs();

    const running = this.nodes.filter((n) => n.running);
    const crashed = this.nodes.filter((n) => n.status === 'crashed').length;
    if (running.length > 0 && crashed < p.maxCrashed && chaos.chance(p.crashChance)) {
      const leader = this.leader();
      const victim = leader && chaos.chance(p.leaderCrashBias) ? leader : running[chaos.int(running.length)]!;
      victim.crash();
      victim.restartAt = this.time + p.minDownTicks + chaos.int(p.maxDownTicks - p.minDownTicks + 1);
      this.stats.crashes++;
    }

    if (running.length > 0 && chaos.chance(p.campaignChance)) {
      const node = running[chaos.int(running.length)]!;
      if (node.running) {
        this.trace.event(this.time, 'campaign', node.num);
        node.raw!.campaign();
        node.afterCall();
        node.process();
      }
    }

    if (chaos.chance(p.transferChance)) {
      const leader = this.leader();
      if (leader) {
        const voters = leader.raw!.latestConfState().voters;
        const target = voters[chaos.int(voters.length)]!;
        this.trace.event(this.time, 'transfer', leader.num, this.nodeNumber(target));
        try {
          leader.raw!.transferLeader(target);
        } catch (err) {
          if (!(err instanceof RaftError)) throw err;
        }
        leader.afterCall();
        leader.process();
      }
    }
  }

  /**
   * Membership changes, proposed at the leader like an operator would: now and then, and (targeted
   * profiles) as soon as a new leader appears, retrying while the leader refuses.
   */
  private operator(): void {
    const p = this.profile;
    const chaos = this.chaos;
    if (p.confChangeOnElection > 0 || p.confRetryTicks > 0) {
      const newLeader = this.leader();
      if (newLeader && newLeader.raw!.raft.term > this.operatorTerm) {
        this.operatorTerm = newLeader.raw!.raft.term;
        if (chaos.chance(p.confChangeOnElection)) {
          this.confRequestUntil = this.time + p.confRetryTicks;
          this.removeUnreachable = chaos.chance(p.removeUnreachableChance);
        }
      }
      if (this.confRequestUntil < this.time && chaos.chance(p.confChangeChance)) this.confRequestUntil = this.time + p.confRetryTicks;
      if (this.confRequestUntil < this.time) return;
    } else if (!chaos.chance(p.confChangeChance)) {
      return;
    }
    const leader = this.leader();
    if (!leader) return;
    const cs = leader.raw!.latestConfState();
    const members = new Set([...cs.voters, ...cs.learners]);
    const options: { type: ConfChangeType; candidates: NodeId[] }[] = [];
    const promotable = cs.learners.filter((id) => this.nodes[this.nodeNumber(id)]!.running);
    if (promotable.length > 0) options.push({ type: 'addVoter', candidates: promotable });
    const outsiders = this.nodes.filter((n) => !members.has(n.id)).map((n) => n.id);
    if (outsiders.length > 0) options.push({ type: 'addLearner', candidates: outsiders });
    const removable = [...cs.learners, ...(cs.voters.length > 1 ? cs.voters : [])];
    if (removable.length > 0 && members.size > 2) options.push({ type: 'removeNode', candidates: removable });
    // Autopilot prunes dead servers only down to a minimum quorum (one below the target size).
    const prune = this.removeUnreachable && cs.voters.length >= Math.max(2, p.targetVoters) && members.size > 2;
    const unreachable = prune ? cs.voters.filter((id) => this.unreachable(leader, id)) : [];
    const steered = unreachable.length > 0 ? [] : p.targetVoters > 0 && chaos.chance(p.steerChance) ? this.steer(cs, promotable, outsiders) : [];
    const choices = unreachable.length > 0 ? [{ type: 'removeNode' as const, candidates: unreachable }] : steered.length > 0 ? steered : options;
    if (choices.length === 0) return;
    const option = choices[chaos.int(choices.length)]!;
    const target = option.candidates[chaos.int(option.candidates.length)]!;
    const targetNode = this.nodes[this.nodeNumber(target)]!;
    try {
      const { term, index } = leader.raw!.proposeConfChange({ type: option.type, node: target });
      this.trace.event(this.time, 'confChange', leader.num, targetNode.num, term, index, 0, 0, option.type);
      this.stats.confChangesProposed++;
      this.confRequestUntil = -1;
      this.removeUnreachable = false;
      // A server joins the cluster by running with an empty disk (or the one it kept) and being told the log.
      if (option.type === 'addLearner' && (targetNode.status === 'absent' || targetNode.status === 'stopped')) targetNode.boot();
      if (this.disruption === null && chaos.chance(p.disruptAfterConfChange)) {
        this.disruption = { at: this.time + chaos.int(p.maxDisruptDelay + 1), node: leader.num, term };
      }
    } catch (err) {
      if (!(err instanceof RaftError)) throw err;
      this.stats.confChangesRefused++;
      this.trace.event(this.time, 'confChangeRejected', leader.num, targetNode.num, 0, 0, 0, 0, `${option.type} ${err.code}`);
    }
    leader.afterCall();
    leader.process();
  }

  /** Whether `leader` cannot reach member `id` now: it is down or the network cuts them apart. */
  private unreachable(leader: SimNode, id: NodeId): boolean {
    const node = this.nodes[this.nodeNumber(id)]!;
    if (node === leader) return false;
    return !node.running || this.network.isCut(leader.num, node.num) || this.network.isCut(node.num, leader.num);
  }

  /** The changes that move the number of voters towards the profile's target (at it: change the voters). */
  private steer(cs: ConfState, promotable: NodeId[], outsiders: NodeId[]): { type: ConfChangeType; candidates: NodeId[] }[] {
    const target = this.profile.targetVoters;
    const voters = cs.voters.length;
    const canRemove = voters > 1 && voters + cs.learners.length > 2;
    const grow = promotable.length > 0 ? [{ type: 'addVoter' as const, candidates: promotable }] : outsiders.length > 0 ? [{ type: 'addLearner' as const, candidates: outsiders }] : [];
    const shrink = canRemove ? [{ type: 'removeNode' as const, candidates: [...cs.voters] }] : [];
    if (voters < target) return grow;
    if (voters > target) return shrink;
    return [...(promotable.length > 0 ? grow : []), ...shrink];
  }

  /** The leader that accepted a membership change loses leadership before it commits: crashed or cut off. */
  private disrupt(d: { readonly node: number; readonly term: number }): void {
    this.disruption = null;
    const p = this.profile;
    const node = this.nodes[d.node]!;
    if (!node.running || node.raw!.raft.role !== 'leader' || node.raw!.raft.term !== d.term) return;
    const crashed = this.nodes.filter((n) => n.status === 'crashed').length;
    if (crashed < p.maxCrashed && this.chaos.chance(0.5)) {
      node.crash();
      node.restartAt = this.time + p.maxDownTicks;
      this.stats.crashes++;
      this.disrupted = { node: d.node, term: d.term, cut: false };
      return;
    }
    const described = this.network.splitOff(new Set([node.num]), (n) => this.nodes[n]!.id);
    if (described === null) return;
    this.stats.partitions++;
    this.healAt = this.time + p.cutMaxTicks;
    this.disrupted = { node: d.node, term: d.term, cut: true };
    this.trace.event(this.time, 'partition', -1, 0, 0, 0, 0, 0, `isolate leader ${node.id} after its membership change`);
  }

  /**
   * A disrupted leader comes back (restarts, or its cut heals) soon after a leader of a later term
   * appears, like a server that stalled long enough to be replaced: at the latest after the
   * longest downtime or cut.
   */
  private returnDisrupted(): void {
    const d = this.disrupted!;
    const leader = this.leader();
    if (!leader || leader.raw!.raft.term <= d.term) return;
    this.disrupted = null;
    const back = this.time + 1 + this.chaos.int(this.profile.electionTicks);
    const node = this.nodes[d.node]!;
    if (node.status === 'crashed' && node.restartAt > back) node.restartAt = back;
    if (d.cut && this.network.partitioned() && this.healAt > back) this.healAt = back;
  }

  /**
   * Splits old from new configurations: cuts the holders of one of the leader's entries off from
   * the other members, replacing any partition in place (once per entry), while that entry has
   * reached some members (at least one besides the leader) but not all.
   *
   * Ordinarily the entry is the leader's latest configuration entry: the members still on the old
   * configuration are cut from those on the new one. When members disagree on the configuration
   * (some node holds an uncommitted configuration entry the leader lacks, left by an earlier leader),
   * the entry may also be the first one of the leader's term, which separates the nodes that have
   * heard from the new leader from those that only know the other configuration. The side cut off
   * may then elect a leader of its own; that is safe only if the configurations' majorities intersect.
   */
  private maybeSplitConfigs(): void {
    const p = this.profile;
    const leader = this.leader();
    if (!leader) return;
    const raft = leader.raw!.raft;
    const confIndex = raft.confIndex();
    const divergent = this.divergentConfiguration(leader);
    const refs = [{ index: confIndex, term: raft.log.term(confIndex), what: 'configuration entry' }];
    if (divergent !== null) refs.push({ index: leader.termStartIndex, term: raft.term, what: `first entry of term ${raft.term}` });
    const eligible: { ref: string; what: string; side: Set<number> }[] = [];
    for (const { index, term, what } of refs) {
      const ref = `${index}/${term}`;
      if (index === 0 || term === 0 || this.configSplitsDone.has(ref)) continue;
      const side = new Set<number>();
      let others = 0;
      for (const node of this.nodes) {
        if (node.status === 'absent') continue;
        if (this.holds(node, index, term)) side.add(node.num);
        else others++;
      }
      if (side.size >= 2 && others > 0) eligible.push({ ref, what, side });
    }
    if (eligible.length === 0 || !this.chaos.chance(divergent !== null ? p.divergentSplitChance : p.configSplitChance)) return;
    const { ref, what, side } = eligible[this.chaos.int(eligible.length)]!;
    const described = this.network.splitOff(side, (n) => this.nodes[n]!.id);
    if (described === null) return;
    this.configSplitsDone.add(ref);
    if (this.disrupted !== null) this.disrupted.cut = false;
    this.stats.partitions++;
    this.stats.configSplits++;
    this.healAt = this.time + p.cutMinTicks + this.chaos.int(p.cutMaxTicks - p.cutMinTicks + 1);
    const why = divergent !== null ? ` (${divergent} holds another configuration)` : '';
    this.trace.event(this.time, 'partition', -1, 0, 0, 0, 0, 0, `split holders of ${what} ${ref} ${described}${why}`);
  }

  /**
   * A member whose log (in memory if running, else on disk) ends with a configuration entry above
   * the leader's commit index that the leader's log lacks, or null.
   */
  private divergentConfiguration(leader: SimNode): NodeId | null {
    const log = leader.raw!.raft.log;
    const committed = log.committed;
    for (const node of this.nodes) {
      if (node === leader || node.status === 'absent') continue;
      let index = 0;
      let term = 0;
      if (node.running) {
        const raft = node.raw!.raft;
        index = raft.confIndex();
        term = raft.log.term(index);
      } else {
        const storage = node.storage;
        const lo = Math.max(committed + 1, storage.firstIndex());
        const tail = lo <= storage.lastIndex() ? storage.entries(lo, storage.lastIndex() + 1, Infinity) : [];
        for (let i = tail.length - 1; i >= 0; i--) {
          if (tail[i]!.type === 'confChange') {
            index = tail[i]!.index;
            term = tail[i]!.term;
            break;
          }
        }
      }
      if (index > committed && term > 0 && log.term(index) !== term) return node.id;
    }
    return null;
  }

  /** Whether a node's log (in memory if running, else on disk) holds entry (index, term) or a snapshot covering it. */
  private holds(node: SimNode, index: number, term: number): boolean {
    if (node.running) {
      const log = node.raw!.raft.log;
      if (index < log.firstIndex()) return log.committed >= index;
      return log.term(index) === term;
    }
    const storage = node.storage;
    if (index <= storage.snapshot().meta.index) return true;
    if (index < storage.firstIndex() || index > storage.lastIndex()) return false;
    return storage.term(index) === term;
  }

  /** Clients propose and read at whichever node they believe leads. */
  private clients(): void {
    const p = this.profile;
    const w = this.workload;
    if (w.chance(p.proposeChance)) {
      const client = w.int(CLIENTS);
      const node = this.clientNode(client);
      if (node) {
        const count = 1 + w.int(p.maxBatch);
        const cmds: { cmd: number; key: number }[] = [];
        for (let i = 0; i < count; i++) cmds.push({ cmd: this.nextCommand++, key: w.int(KEYS) });
        try {
          const { term, firstIndex } = node.propose(cmds);
          this.trace.event(this.time, 'propose', node.num, cmds[0]!.cmd, count, term, firstIndex);
        } catch (err) {
          if (!(err instanceof RaftError)) throw err;
          this.trace.event(this.time, 'proposeRejected', node.num, cmds[0]!.cmd, count, 0, 0, 0, err.code);
          this.clientHints[client] = err instanceof NotLeaderError && err.leader ? this.nodeNumber(err.leader) : -1;
        }
        node.process();
      }
    }
    if (w.chance(p.readChance)) {
      const client = w.int(CLIENTS);
      const node = this.clientNode(client);
      if (node) {
        const read = this.history.newRead(this.nextRead++, node.id, w.int(KEYS));
        this.trace.event(this.time, 'read', node.num, read.id, read.key);
        node.readIndex(read);
        node.process();
      }
    }
  }

  private clientNode(client: number): SimNode | null {
    const hint = this.clientHints[client]!;
    if (hint >= 0 && this.nodes[hint]!.running) return this.nodes[hint]!;
    const running = this.nodes.filter((n) => n.running);
    if (running.length === 0) return null;
    const node = running[this.workload.int(running.length)]!;
    this.clientHints[client] = node.num;
    return node;
  }

  // Liveness -----------------------------------------------------------------------------------

  /** Entries between the least applied node and the longest log. */
  private backlog(): number {
    let longest = 0;
    let leastApplied = Infinity;
    for (const node of this.nodes) {
      if (node.status === 'absent') continue;
      longest = Math.max(longest, node.storage.lastIndex());
      leastApplied = Math.min(leastApplied, node.storage.snapshot().meta.index, node.running ? node.sm.applied : Infinity);
    }
    return leastApplied === Infinity ? longest : Math.max(0, longest - leastApplied);
  }

  private startLiveness(): void {
    this.network.faulty = false;
    this.network.heal();
    this.trace.event(this.time, 'phase', -1, 0, 0, 0, 0, 0, 'liveness: faults stop, network heals, crashed nodes restart');
    for (const node of this.nodes) if (node.status === 'crashed') node.boot();
  }

  private driveLiveness(): void {
    const leader = this.leader();
    if (!leader) return;
    const cs = leader.raw!.latestConfState();
    for (const id of [...cs.voters, ...cs.learners]) {
      const node = this.nodes[this.nodeNumber(id)]!;
      if (!node.running) node.boot();
    }
    if (this.fresh === null || this.fresh.status === 'abandoned' || this.fresh.status === 'unknown') {
      const cmd = this.nextCommand++;
      try {
        const { firstIndex } = leader.propose([{ cmd, key: 0 }]);
        this.fresh = leader.proposals.get(firstIndex) ?? null;
        this.trace.event(this.time, 'propose', leader.num, cmd, 1, leader.raw!.raft.term, firstIndex);
      } catch (err) {
        if (!(err instanceof RaftError)) throw err;
      }
      leader.process();
    }
  }

  /** Null once the cluster is live and caught up; otherwise what is still missing. */
  private livenessUnmet(): string | null {
    const leader = this.leader();
    if (!leader) return 'no leader';
    const raft = leader.raw!.raft;
    if (this.fresh === null || this.fresh.status !== 'acked') return `the fresh proposal is not acknowledged (${this.fresh ? `${this.fresh.status} at ${this.fresh.index}` : 'not accepted'})`;
    const cs = raft.confState();
    for (const id of [...cs.voters, ...cs.learners]) {
      const node = this.nodes[this.nodeNumber(id)]!;
      if (!node.running) return `member ${id} is not running`;
      const r = node.raw!.raft;
      if (r.term !== raft.term || r.lead !== leader.id) return `member ${id} (term ${r.term}, leader '${r.lead}') does not follow ${leader.id} of term ${raft.term}`;
      if (node.sm.applied < this.history.maxAckedIndex) return `member ${id} applied ${node.sm.applied}, below acknowledged index ${this.history.maxAckedIndex}`;
      if (node.waitingReads.length > 0) return `member ${id} has ${node.waitingReads.length} answered reads it has not served (first at read index ${node.waitingReads[0]!.index}, applied ${node.sm.applied})`;
    }
    for (const node of this.nodes) {
      if (!node.running) continue;
      if (node.proposals.size > 0) {
        const first = node.proposals.values().next().value!;
        return `${node.id} still has ${node.proposals.size} pending proposals (first: command ${first.cmd} at ${first.index} of term ${first.term})`;
      }
      // A removed node never reaches an answered read's index; the core must still resolve the others.
      if (node.reads.size > 0) return `${node.id} still has ${node.reads.size} reads the core neither answered nor failed`;
    }
    return null;
  }

  /** Every node's state and the leader's view of replication, for liveness reports. */
  private describeLeader(): string {
    const lines: string[] = [];
    for (const node of this.nodes) {
      if (!node.running) {
        lines.push(`${node.id}: ${node.status}`);
        continue;
      }
      const r = node.raw!.raft;
      const cs = r.confState();
      lines.push(
        `${node.id}: ${r.role} term=${r.term} vote=${r.vote || '-'} lead=${r.lead || '-'} last=${r.log.lastIndex()}/${r.log.lastTerm()} commit=${r.log.committed} applied=${r.log.applied} voters={${cs.voters.join(',')}} learners={${cs.learners.join(',')}}`,
      );
    }
    const leader = this.leader();
    if (!leader) return `\n${lines.join('\n')}`;
    const st = leader.raw!.status();
    const peers = st.progress.map((p) => `${p.id}:${p.state} match=${p.match} next=${p.next}${p.isLearner ? ' learner' : ''}${p.recentActive ? '' : ' inactive'}`);
    return `\n${lines.join('\n')}\nleader ${st.id} progress: ${peers.join('; ')}`;
  }

  // Views --------------------------------------------------------------------------------------

  /** The running node that leads in the highest term, if any. */
  private leader(): SimNode | null {
    let best: SimNode | null = null;
    for (const node of this.nodes) {
      if (!node.running) continue;
      const raft = node.raw!.raft;
      if (raft.role === 'leader' && (best === null || raft.term > best.raw!.raft.term)) best = node;
    }
    return best;
  }

  private *leaders(): Iterable<LeaderView> {
    for (const node of this.nodes) {
      if (!node.running) continue;
      const raft = node.raw!.raft;
      if (raft.role === 'leader') yield { id: node.id, term: raft.term, log: raft.log };
    }
  }
}

/** The fields of a message worth tracing besides its type and term: an index and one extra number. */
function messageFields(m: Message): [number, number] {
  switch (m.type) {
    case 'app':
      return [m.index, m.entries.length];
    case 'appResp':
      return [m.index, m.reject ? 1 : 0];
    case 'vote':
    case 'preVote':
      return [m.index, m.logTerm];
    case 'voteResp':
    case 'preVoteResp':
      return [0, m.reject ? 1 : 0];
    case 'heartbeat':
      return [m.commit, m.context === '' ? 0 : 1];
    case 'snap':
      return [m.snapshot.meta.index, m.snapshot.meta.term];
    case 'readIndexResp':
      return [m.index, 0];
    default:
      return [0, 0];
  }
}

function asViolation(err: unknown): SimViolation {
  if (err instanceof SimViolation) return err;
  if (err instanceof RaftInvariantError) return new SimViolation('coreInvariant', `the core threw RaftInvariantError: ${err.message}\n${stackFrames(err)}`);
  if (err instanceof Error) return new SimViolation('unexpectedError', `${err.name}: ${err.message}\n${stackFrames(err)}`);
  return new SimViolation('unexpectedError', String(err));
}

/** The innermost frames of an error's stack, to show where in the core it was thrown. */
function stackFrames(err: Error): string {
  return (err.stack ?? '')
    .split('\n')
    .filter((line) => line.trimStart().startsWith('at '))
    .slice(0, 6)
    .join('\n');
}
