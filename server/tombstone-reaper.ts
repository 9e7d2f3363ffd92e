// Deleted KV keys leave tombstones so that listing indexes never go backwards for a watcher. The
// leader reaps the ones older than the TTL (Consul's tombstone_ttl, 15 minutes: longer than any
// blocking wait) through the Raft log, so every server drops the same tombstones.
import { encodeCommand } from '../fsm/commands.ts';
import type { RaftHost } from '../raft/host/raft-host.ts';
import { PeriodicTask } from '../agent/core/periodic-task.ts';

export interface TombstoneReaperOptions {
  readonly raft: RaftHost;
  readonly ttlMs: number;
  readonly checkEveryMs: number;
  readonly hasTombstones: () => boolean;
  readonly onError?: (err: unknown) => void;
}

export class TombstoneReaper extends PeriodicTask {
  private readonly options: TombstoneReaperOptions;
  /** (time, applied index) samples: the index that was current at a given time. */
  private samples: { atMs: number; index: number }[] = [];

  constructor(options: TombstoneReaperOptions) {
    super();
    this.options = options;
  }

  protected checkEveryMs(): number {
    return this.options.checkEveryMs;
  }

  /** One round: remember the current index; on the leader, reap what is older than the TTL. */
  async check(nowMs: number): Promise<void> {
    const { raft, ttlMs } = this.options;
    this.samples.push({ atMs: nowMs, index: raft.applied() });
    let cutoff = 0;
    while (this.samples.length > 0 && this.samples[0]!.atMs <= nowMs - ttlMs) cutoff = this.samples.shift()!.index;
    if (cutoff === 0 || !raft.isReadyLeader() || !this.options.hasTombstones()) return;
    try {
      await raft.propose(encodeCommand({ type: 'kvReapTombstones', upToIndex: cutoff }));
    } catch (err) {
      this.options.onError?.(err);
    }
  }
}
