// Fault profiles: every knob of a run (Raft settings, network faults, crashes, workload) drawn from
// the seed, so that one seed fixes the whole run. `generic` varies everything widely; targeted
// profiles bias the dice towards the schedules that specific bugs need.
import type { Prng } from '../core/prng.ts';

export const PROFILE_NAMES = ['generic', 'figure8', 'membership'] as const;
export type ProfileName = (typeof PROFILE_NAMES)[number];

export interface FaultProfile {
  readonly name: ProfileName;
  readonly nodes: number;
  /** Ids beyond the initial voters that membership changes may add. */
  readonly spares: number;
  // Raft settings.
  readonly electionTicks: number;
  readonly heartbeatTicks: number;
  readonly preVote: boolean;
  readonly checkQuorum: boolean;
  readonly maxSizePerMsg: number;
  readonly maxInflightMsgs: number;
  readonly maxCommittedSizePerReady: number;
  // Network.
  readonly loss: number;
  readonly duplicate: number;
  /** Every message takes 1 + [0, jitter] ticks... */
  readonly jitter: number;
  /** ...and with this chance up to `lateTicks` more (a message overtaken by later ones). */
  readonly late: number;
  readonly lateTicks: number;
  /** Deliver messages due in the same tick in random order. */
  readonly shuffle: boolean;
  /** The transport reports a dropped append to an unreachable peer. */
  readonly reportUnreachable: boolean;
  // Partitions.
  readonly partitionChance: number;
  readonly partitionMinTicks: number;
  readonly partitionMaxTicks: number;
  // Crashes.
  readonly crashChance: number;
  /** Share of crashes that hit the current leader. */
  readonly leaderCrashBias: number;
  readonly minDownTicks: number;
  readonly maxDownTicks: number;
  readonly maxCrashed: number;
  /** Chance that a Ready's write takes 1..maxPersistDelay ticks (a crash meanwhile loses it). */
  readonly persistDelayChance: number;
  readonly maxPersistDelay: number;
  // Snapshots.
  readonly snapshotEvery: number;
  readonly keepEntries: number;
  // Workload.
  readonly proposeChance: number;
  readonly maxBatch: number;
  readonly readChance: number;
  readonly confChangeChance: number;
  /** Chance that the operator asks a newly elected leader for a membership change at once. */
  readonly confChangeOnElection: number;
  /** How many ticks the operator retries a change the leader refused (0: one attempt). */
  readonly confRetryTicks: number;
  /**
   * Share of changes that steer the number of voters towards `targetVoters` (grow below it, shrink
   * above it, change the voters at it) instead of picking any change. Single-server changes from an
   * even number of voters are the ones whose old and new majorities can be disjoint.
   */
  readonly steerChance: number;
  readonly targetVoters: number;
  /**
   * Chance that a change asked of a newly elected leader removes a voter the leader cannot reach
   * (down or cut off), as autopilot's dead-server cleanup would: often the leader it replaced.
   */
  readonly removeUnreachableChance: number;
  /** Chance that a leader which just accepted a change is crashed or isolated within `maxDisruptDelay` ticks. */
  readonly disruptAfterConfChange: number;
  readonly maxDisruptDelay: number;
  /**
   * Per tick, while some members (at least two) hold the leader's latest configuration entry and
   * others do not: the chance that the network cuts the holders off from the rest (once per entry).
   */
  readonly configSplitChance: number;
  /**
   * The same while members disagree on the configuration (a node holds an uncommitted configuration
   * entry the leader lacks); the cut may then also follow the first entry of the leader's term.
   */
  readonly divergentSplitChance: number;
  /** How long those targeted cuts (a disrupted leader's isolation, a configuration split) last. */
  readonly cutMinTicks: number;
  readonly cutMaxTicks: number;
  readonly stopRemovedChance: number;
  readonly transferChance: number;
  readonly campaignChance: number;
  // Phases.
  readonly safetyTicks: number;
  readonly livenessTicks: number;
}

function pick<T>(prng: Prng, options: readonly T[]): T {
  return options[prng.int(options.length)]!;
}

export function deriveProfile(name: ProfileName, nodes: number, prng: Prng): FaultProfile {
  switch (name) {
    case 'figure8':
      return figure8(nodes, prng);
    case 'membership':
      return membership(nodes, prng);
    case 'generic':
      return generic(nodes, prng);
  }
}

/** The knobs only targeted profiles turn on (they draw nothing, so existing seeds replay unchanged). */
const NO_TARGETED_MEMBERSHIP = {
  confChangeOnElection: 0,
  confRetryTicks: 0,
  steerChance: 0,
  targetVoters: 0,
  removeUnreachableChance: 0,
  disruptAfterConfChange: 0,
  maxDisruptDelay: 0,
  configSplitChance: 0,
  divergentSplitChance: 0,
  cutMinTicks: 0,
  cutMaxTicks: 0,
} as const;

function generic(nodes: number, prng: Prng): FaultProfile {
  const electionTicks = pick(prng, [8, 10, 14]);
  const heartbeatTicks = pick(prng, [1, 2, 3]);
  const calmNetwork = prng.chance(0.15);
  return {
    name: 'generic',
    nodes,
    spares: 1 + prng.int(2),
    electionTicks,
    heartbeatTicks,
    preVote: prng.chance(0.75),
    checkQuorum: prng.chance(0.75),
    maxSizePerMsg: pick(prng, [1, 60, 400, 1 << 20]),
    maxInflightMsgs: pick(prng, [1, 3, 16, 256]),
    maxCommittedSizePerReady: pick(prng, [1, 100, 1 << 26]),
    loss: calmNetwork ? 0 : pick(prng, [0, 0.01, 0.05, 0.15]),
    duplicate: calmNetwork ? 0 : pick(prng, [0, 0.02, 0.1]),
    jitter: pick(prng, [0, 1, 2]),
    late: calmNetwork ? 0 : pick(prng, [0, 0.03, 0.1]),
    lateTicks: pick(prng, [3, electionTicks, 3 * electionTicks]),
    shuffle: prng.chance(0.7),
    reportUnreachable: prng.chance(0.5),
    partitionChance: pick(prng, [0, 0.004, 0.015, 0.03]),
    partitionMinTicks: electionTicks,
    partitionMaxTicks: pick(prng, [3, 8]) * electionTicks,
    crashChance: pick(prng, [0, 0.003, 0.01, 0.025]),
    leaderCrashBias: pick(prng, [0.1, 0.5, 0.8]),
    minDownTicks: 1,
    maxDownTicks: pick(prng, [2, 6]) * electionTicks,
    maxCrashed: prng.chance(0.3) ? nodes : Math.max(1, Math.floor((nodes - 1) / 2)),
    persistDelayChance: pick(prng, [0, 0.2, 0.6]),
    maxPersistDelay: pick(prng, [1, 3]),
    snapshotEvery: pick(prng, [3, 8, 25]),
    keepEntries: pick(prng, [0, 2, 6]),
    proposeChance: pick(prng, [0.15, 0.35, 0.6]),
    maxBatch: pick(prng, [1, 3]),
    readChance: pick(prng, [0.05, 0.15, 0.3]),
    confChangeChance: pick(prng, [0, 0.005, 0.02, 0.05]),
    ...NO_TARGETED_MEMBERSHIP,
    stopRemovedChance: pick(prng, [0, 0.5, 1]),
    transferChance: pick(prng, [0, 0.002, 0.01]),
    campaignChance: pick(prng, [0, 0, 0.003]),
    safetyTicks: pick(prng, [300, 450, 600]),
    livenessTicks: 60 * electionTicks,
  };
}

/**
 * The Raft paper's Figure 8 needs short terms in which a leader replicates part of its log to a
 * minority and dies: frequent leader crashes, one entry per append, lossy links, forced elections.
 */
function figure8(nodes: number, prng: Prng): FaultProfile {
  const electionTicks = pick(prng, [6, 8]);
  return {
    name: 'figure8',
    nodes,
    spares: 1,
    electionTicks,
    heartbeatTicks: 1,
    preVote: prng.chance(0.5),
    checkQuorum: prng.chance(0.5),
    maxSizePerMsg: 1,
    maxInflightMsgs: pick(prng, [1, 2]),
    maxCommittedSizePerReady: 1 << 26,
    loss: pick(prng, [0.1, 0.25]),
    duplicate: 0.02,
    jitter: pick(prng, [1, 2]),
    late: 0.05,
    lateTicks: electionTicks,
    shuffle: true,
    reportUnreachable: true,
    partitionChance: 0.03,
    partitionMinTicks: 2,
    partitionMaxTicks: 2 * electionTicks,
    crashChance: pick(prng, [0.05, 0.1]),
    leaderCrashBias: 0.9,
    minDownTicks: 1,
    maxDownTicks: 2 * electionTicks,
    maxCrashed: Math.max(1, Math.floor((nodes - 1) / 2)),
    persistDelayChance: 0.2,
    maxPersistDelay: 1,
    snapshotEvery: 50,
    keepEntries: 10,
    proposeChance: 0.6,
    maxBatch: 2,
    readChance: 0.05,
    confChangeChance: 0,
    ...NO_TARGETED_MEMBERSHIP,
    stopRemovedChance: 0,
    transferChance: 0,
    campaignChance: 0.02,
    safetyTicks: 500,
    livenessTicks: 60 * electionTicks,
  };
}

/**
 * Membership changes together with leader changes and snapshots. Single-server changes are safe
 * only if every leader changes the configuration its predecessors committed (docs/adr/0002, rule 2).
 * Breaking that (the bug of single-server changes Ongaro posted in 2015) takes a schedule this
 * profile makes likely:
 *  - an even number of voters, since only then can the majorities of two configurations that each
 *    differ from it by one server be disjoint: the operator steers the voter count to an even target;
 *  - a leader that appends a voter change and loses leadership before it commits: crashed or cut off
 *    right after the proposal, and back soon after a successor is elected;
 *  - a successor, elected without that entry, asked at once for a change (often autopilot's removal
 *    of the unreachable old leader); a correct core refuses until an entry of its term commits;
 *  - a cut between the nodes that have heard from the successor and the others, which still hold
 *    the old leader's configuration or the one before, so that both configurations can act.
 * Snapshots every few entries with little log kept make configurations travel in snapshots, to new
 * learners and to lagging members.
 */
function membership(nodes: number, prng: Prng): FaultProfile {
  const electionTicks = pick(prng, [6, 8, 10]);
  return {
    name: 'membership',
    nodes,
    spares: 2 + prng.int(2),
    electionTicks,
    heartbeatTicks: pick(prng, [1, 2]),
    preVote: prng.chance(0.5),
    checkQuorum: prng.chance(0.5),
    maxSizePerMsg: pick(prng, [1, 60, 1 << 20]),
    maxInflightMsgs: pick(prng, [1, 4, 64]),
    maxCommittedSizePerReady: pick(prng, [100, 1 << 26]),
    loss: pick(prng, [0.02, 0.1]),
    duplicate: 0.02,
    // Jitter lets an append reach one follower ticks before another: the moment a split catches.
    jitter: pick(prng, [1, 2, 3]),
    late: pick(prng, [0, 0.03]),
    lateTicks: electionTicks,
    shuffle: true,
    reportUnreachable: prng.chance(0.5),
    // The chaos is aimed (disruptions, splits): the rest of the time the cluster should make progress.
    partitionChance: pick(prng, [0.003, 0.01]),
    partitionMinTicks: 2,
    partitionMaxTicks: 2 * electionTicks,
    crashChance: pick(prng, [0.003, 0.01]),
    leaderCrashBias: 0.7,
    minDownTicks: 1,
    maxDownTicks: 3 * electionTicks,
    maxCrashed: Math.max(1, Math.floor((nodes - 1) / 2)),
    persistDelayChance: pick(prng, [0, 0.2]),
    maxPersistDelay: pick(prng, [1, 2]),
    snapshotEvery: pick(prng, [3, 8, 20]),
    keepEntries: pick(prng, [0, 2, 10]),
    proposeChance: pick(prng, [0.2, 0.5]),
    maxBatch: 2,
    readChance: 0.1,
    confChangeChance: pick(prng, [0.02, 0.05]),
    confChangeOnElection: pick(prng, [0.7, 0.95]),
    confRetryTicks: pick(prng, [0, electionTicks]),
    steerChance: pick(prng, [0.7, 0.9]),
    targetVoters: nodes % 2 === 0 ? nodes : nodes === 3 ? 4 : pick(prng, [nodes - 1, nodes + 1]),
    removeUnreachableChance: pick(prng, [0.5, 0.8]),
    disruptAfterConfChange: pick(prng, [0.3, 0.6]),
    maxDisruptDelay: 2,
    configSplitChance: pick(prng, [0.05, 0.2]),
    divergentSplitChance: pick(prng, [0.8, 1]),
    // Long enough for the side cut off to elect a leader of its own.
    cutMinTicks: 2 * electionTicks,
    cutMaxTicks: 4 * electionTicks,
    stopRemovedChance: pick(prng, [0, 0.5]),
    transferChance: 0.005,
    campaignChance: 0.005,
    safetyTicks: 600,
    livenessTicks: 60 * electionTicks,
  };
}

export function describeProfile(p: FaultProfile): string {
  const pct = (x: number): string => `${Math.round(x * 1000) / 10}%`;
  return [
    `profile=${p.name} nodes=${p.nodes}+${p.spares} election=${p.electionTicks} heartbeat=${p.heartbeatTicks} preVote=${p.preVote} checkQuorum=${p.checkQuorum}`,
    `  msg: maxSize=${p.maxSizePerMsg} maxInflight=${p.maxInflightMsgs} maxCommittedPerReady=${p.maxCommittedSizePerReady}`,
    `  net: loss=${pct(p.loss)} dup=${pct(p.duplicate)} jitter=${p.jitter} late=${pct(p.late)}x${p.lateTicks} shuffle=${p.shuffle} reportUnreachable=${p.reportUnreachable}`,
    `  partitions: ${pct(p.partitionChance)}/tick lasting ${p.partitionMinTicks}-${p.partitionMaxTicks}`,
    `  crashes: ${pct(p.crashChance)}/tick leaderBias=${p.leaderCrashBias} down=${p.minDownTicks}-${p.maxDownTicks} max=${p.maxCrashed} persistDelay=${pct(p.persistDelayChance)}x${p.maxPersistDelay}`,
    `  snapshots: every ${p.snapshotEvery} keep ${p.keepEntries}`,
    `  workload: propose=${pct(p.proposeChance)}x${p.maxBatch} read=${pct(p.readChance)} conf=${pct(p.confChangeChance)} stopRemoved=${pct(p.stopRemovedChance)} transfer=${pct(p.transferChance)} campaign=${pct(p.campaignChance)}`,
    ...(p.confChangeOnElection > 0 || p.disruptAfterConfChange > 0 || p.configSplitChance > 0 || p.divergentSplitChance > 0
      ? [
          `  membership: onElection=${pct(p.confChangeOnElection)} retry=${p.confRetryTicks} steer=${pct(p.steerChance)}->${p.targetVoters} removeUnreachable=${pct(p.removeUnreachableChance)} disruptAfter=${pct(p.disruptAfterConfChange)}x${p.maxDisruptDelay} configSplit=${pct(p.configSplitChance)}/${pct(p.divergentSplitChance)}`,
        ]
      : []),
    `  phases: safety=${p.safetyTicks} liveness<=${p.livenessTicks}`,
  ].join('\n');
}
