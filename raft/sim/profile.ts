// Fault profiles: every knob of a run (Raft settings, network faults, crashes, workload) drawn from
// the seed, so that one seed fixes the whole run. `generic` varies everything widely; targeted
// profiles bias the dice towards the schedules that specific bugs need.
import type { Prng } from '../core/prng.ts';

export const PROFILE_NAMES = ['generic', 'figure8'] as const;
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
  return name === 'figure8' ? figure8(nodes, prng) : generic(nodes, prng);
}

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
    stopRemovedChance: 0,
    transferChance: 0,
    campaignChance: 0.02,
    safetyTicks: 500,
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
    `  phases: safety=${p.safetyTicks} liveness<=${p.livenessTicks}`,
  ].join('\n');
}
