// Autopilot, run by the leader: promotes learners that have caught up to voters, and removes voters
// that have been unreachable for longer than `deadServerAfterMs` when enough healthy voters remain
// (seed backlog BACK-005). It also judges every server's health for the operator APIs.
import type { RaftHost } from '../../raft/host/raft-host.ts';
import type { AutopilotConfig, AutopilotHealth } from './cluster-service.ts';

export interface AutopilotOptions {
  readonly id: string;
  readonly raft: RaftHost;
  readonly config: AutopilotConfig;
  readonly log: (level: 'info' | 'warn', message: string) => void;
  readonly checkEveryMs?: number;
}

/** A learner counts as caught up when it is at most this many entries behind the leader's commit. */
const CAUGHT_UP_ENTRIES = 64;

export class Autopilot {
  private readonly id: string;
  private readonly raft: RaftHost;
  private readonly log: AutopilotOptions['log'];
  private readonly checkEveryMs: number;
  private settings: AutopilotConfig;
  private timer: NodeJS.Timeout | null = null;
  private busy = false;
  private leaderSinceMs = 0;
  /** When each server entered its current health state (for StableSince). */
  private readonly healthSince = new Map<string, { healthy: boolean; sinceMs: number }>();
  private unsubscribe: (() => void) | null = null;

  constructor(options: AutopilotOptions) {
    this.id = options.id;
    this.raft = options.raft;
    this.settings = options.config;
    this.log = options.log;
    this.checkEveryMs = options.checkEveryMs ?? 250;
  }

  start(): void {
    this.unsubscribe = this.raft.onSoftState((s) => {
      this.leaderSinceMs = s.role === 'leader' ? (this.leaderSinceMs || Date.now()) : 0;
    });
    this.timer = setInterval(() => void this.step(), this.checkEveryMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.unsubscribe?.();
  }

  config(): AutopilotConfig {
    return this.settings;
  }

  setConfig(update: Partial<AutopilotConfig>): void {
    this.settings = { ...this.settings, ...update };
  }

  /**
   * Milliseconds since the leader last heard from `id`: for a server never heard from, the time since
   * this leadership began (a new leader gives everyone the benefit of the doubt). -1 off the leader.
   */
  silenceMs(id: string): number {
    if (!this.raft.isLeader()) return -1;
    if (id === this.id) return 0;
    const heard = this.raft.lastHeardFromMs(id);
    const sinceLeader = this.leaderSinceMs ? Date.now() - this.leaderSinceMs : 0;
    return heard < 0 ? sinceLeader : Math.min(heard, sinceLeader);
  }

  /** On the leader: heard from within the threshold. Elsewhere: only the leader's and our own health are known. */
  isHealthy(id: string): boolean {
    if (this.raft.isLeader()) return this.silenceMs(id) <= this.settings.lastContactThresholdMs;
    const lead = this.raft.leader();
    if (lead === '') return false;
    if (id === this.id || id === lead) return this.raft.lastContactMs() >= 0 && this.raft.lastContactMs() <= this.settings.lastContactThresholdMs;
    return false;
  }

  health(rpcAddressOf: (id: string) => string): AutopilotHealth {
    const status = this.raft.status();
    const conf = status.confState;
    const progress = new Map(status.progress.map((p) => [p.id, p]));
    const now = Date.now();
    const servers = [...conf.voters, ...conf.learners].map((id) => {
      const healthy = this.isHealthy(id);
      const known = this.healthSince.get(id);
      if (!known || known.healthy !== healthy) this.healthSince.set(id, { healthy, sinceMs: now });
      const since = this.healthSince.get(id)!.sinceMs;
      const self = id === this.id;
      const lastContactMs = self ? 0 : this.raft.isLeader() ? this.silenceMs(id) : id === status.lead ? this.raft.lastContactMs() : -1;
      return {
        id,
        name: id,
        rpcAddr: rpcAddressOf(id),
        leader: id === status.lead,
        voter: conf.voters.includes(id),
        healthy,
        lastContactMs,
        lastTerm: status.term,
        lastIndex: self ? status.lastIndex : (progress.get(id)?.match ?? 0),
        stableSince: new Date(since).toISOString(),
      };
    });
    const healthyVoters = servers.filter((s) => s.voter && s.healthy).length;
    const quorum = Math.floor(conf.voters.length / 2) + 1;
    return {
      healthy: servers.every((s) => s.healthy),
      failureTolerance: Math.max(0, healthyVoters - quorum),
      servers,
    };
  }

  private async step(): Promise<void> {
    if (this.busy || !this.raft.isReadyLeader()) return;
    this.busy = true;
    try {
      if (!(await this.promoteCaughtUpLearner())) await this.removeDeadVoter();
    } catch (err) {
      this.log('warn', `autopilot: ${(err as Error).message}`);
    } finally {
      this.busy = false;
    }
  }

  private async promoteCaughtUpLearner(): Promise<boolean> {
    const status = this.raft.status();
    const learner = status.progress.find(
      (p) => p.isLearner && p.id !== this.id && p.match + CAUGHT_UP_ENTRIES >= status.commit && this.isHealthy(p.id),
    );
    if (!learner) return false;
    this.log('info', `autopilot: promoting ${learner.id} to voter (caught up at index ${learner.match})`);
    await this.raft.proposeConfChange({ type: 'addVoter', node: learner.id });
    return true;
  }

  private async removeDeadVoter(): Promise<boolean> {
    const { cleanupDeadServers, deadServerAfterMs, minQuorum } = this.settings;
    if (!cleanupDeadServers) return false;
    const voters = this.raft.configuration().voters;
    const dead = voters.filter((id) => id !== this.id && this.silenceMs(id) > deadServerAfterMs);
    if (dead.length === 0) return false;
    const victim = dead[0]!;
    const remaining = voters.filter((id) => id !== victim);
    const healthyRemaining = remaining.filter((id) => this.isHealthy(id)).length;
    // Removing must leave a quorum of healthy voters in the new configuration, and at least minQuorum voters.
    if (remaining.length < Math.max(1, minQuorum) || healthyRemaining < Math.floor(remaining.length / 2) + 1) return false;
    this.log('warn', `autopilot: removing ${victim}, unreachable for ${Math.round(this.silenceMs(victim) / 1000)}s`);
    await this.raft.proposeConfChange({ type: 'removeNode', node: victim });
    return true;
  }
}
