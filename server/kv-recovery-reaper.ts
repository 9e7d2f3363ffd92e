// The leader's side of recoverable deletes (docs/adr/0017-kv-recovery.md). The rules live in the
// replicated state, not in each server's config file, so that every replica keeps exactly the same
// versions: whenever the FSM holds other rules than this server's config (a new cluster, a config
// change, an election won by a server configured differently, a snapshot restore) the leader
// proposes its own. And, like the tombstone reaper, it proposes a reap with its clock once a kept
// version's retention ran out, so that every server drops the same versions at the same index.
import { encodeCommand } from '../fsm/commands.ts';
import { sameRules, type KvRecoveryRule } from '../fsm/state/kv-recovery-commands.ts';
import type { KvRecoveryTable } from '../fsm/state/kv-recovery.ts';
import { PeriodicTask } from '../agent/core/periodic-task.ts';

/** The parts of the Raft host the keeper uses. */
export interface KvRecoveryRaft {
  isReadyLeader(): boolean;
  propose(command: Uint8Array): Promise<unknown>;
}

export interface KvRecoveryKeeperOptions {
  readonly raft: KvRecoveryRaft;
  readonly table: KvRecoveryTable;
  /** This server's configured rules (canonical order) and byte limit. */
  readonly rules: readonly KvRecoveryRule[];
  readonly maxBytes: number;
  /** How often to compare rules and look for expired versions (both are local reads). */
  readonly checkEveryMs: number;
  readonly onError?: (err: unknown) => void;
}

export class KvRecoveryKeeper extends PeriodicTask {
  /** One proposal at a time: the next check sees its effect. */
  private proposing = false;

  constructor(private readonly options: KvRecoveryKeeperOptions) {
    super();
  }

  protected checkEveryMs(): number {
    return this.options.checkEveryMs;
  }

  /** Whether the FSM already holds this server's configuration. */
  inSync(): boolean {
    const { table, rules, maxBytes } = this.options;
    const current = table.currentRules();
    // Without rules the byte limit means nothing: a cluster that never used the feature proposes nothing.
    if (rules.length === 0 && current.length === 0) return true;
    return sameRules(current, rules) && table.currentMaxBytes() === maxBytes;
  }

  /** One round, on the leader only: first the rules, then a reap if a version expired by `nowMs`. */
  async check(nowMs: number): Promise<void> {
    const { raft, table, rules, maxBytes } = this.options;
    if (this.proposing || !raft.isReadyLeader()) return;
    let command: Uint8Array | null = null;
    if (!this.inSync()) command = encodeCommand({ type: 'kvRecoveryRules', rules, maxBytes });
    else if (table.earliestExpiryMs() <= nowMs) command = encodeCommand({ type: 'kvRecoveryReap', nowMs });
    if (command === null) return;
    this.proposing = true;
    try {
      await raft.propose(command);
    } catch (err) {
      this.options.onError?.(err);
    } finally {
      this.proposing = false;
    }
  }
}
