// Session TTLs: the leader invalidates a session whose TTL ran out, as Consul's session_ttl.go does.
//
// Consul keeps one timer per session on the leader, reset by every renewal (renewals are forwarded
// to the leader and never written to Raft), set to TTL × 2 (SessionTTLMultiplier: the contract is
// only that a session does not expire before its TTL), and reset for every session when a new
// leader takes over (initializeSessionTimers).
//
// Konsul replicates renewals instead (a tiny sessionRenew entry; any server can take one and
// propose it), and the FSM records the index of each session's last renewal. Every
// `checkEveryMs` the leader looks at those indexes: a new one means "renewed now" on the leader's
// own clock, and a session whose index has not moved for TTL × 2 is expired by a sessionDestroy
// that names the index it saw (`ifRenewIndex`). A renewal that commits before the expiry wins: the
// FSM then ignores the expiry. No other server's clock is involved, and a new leader (a new term)
// starts every session afresh with a full TTL × 2, as Consul does.
import { encodeCommand } from '../fsm/commands.ts';
import { parseGoDuration } from '../lib/duration.ts';
import { SESSION_TTL_MULTIPLIER, type SessionsTable } from '../fsm/state/sessions.ts';
import { PeriodicTask } from '../agent/core/periodic-task.ts';

/** What the timer needs from the Raft host (RaftHost implements it). */
export interface SessionTtlRaft {
  isReadyLeader(): boolean;
  status(): { readonly term: number };
  propose(command: Uint8Array): Promise<unknown>;
}

export interface SessionTtlTimerOptions {
  readonly raft: SessionTtlRaft;
  readonly sessions: SessionsTable;
  /** How often the leader looks for expired sessions (a session may outlive TTL × 2 by this much). */
  readonly checkEveryMs: number;
  readonly onError?: (err: unknown) => void;
}

interface Tracked {
  /** The renewal index last seen, and when (leader's clock). */
  renewIndex: number;
  seenAtMs: number;
  ttlMs: number;
}

export class SessionTtlTimer extends PeriodicTask {
  private readonly options: SessionTtlTimerOptions;
  private readonly tracked = new Map<string, Tracked>();
  /** The term the tracked times belong to; a new term starts every session afresh. */
  private trackedTerm = -1;
  /** Sessions whose expiry is being proposed (not proposed twice at once). */
  private readonly expiring = new Set<string>();

  constructor(options: SessionTtlTimerOptions) {
    super();
    this.options = options;
  }

  protected checkEveryMs(): number {
    return this.options.checkEveryMs;
  }

  /** How many sessions with a TTL the leader is timing (0 on followers). */
  get trackedCount(): number {
    return this.tracked.size;
  }

  /**
   * One round at `nowMs`: on the leader, note renewals and propose the expiry of every session not
   * renewed for TTL × 2. Resolves when the proposals it made are decided.
   */
  async check(nowMs: number): Promise<void> {
    const { raft, sessions } = this.options;
    if (!raft.isReadyLeader()) {
      this.tracked.clear();
      this.trackedTerm = -1;
      return;
    }
    const term = raft.status().term;
    if (term !== this.trackedTerm) {
      this.tracked.clear();
      this.trackedTerm = term;
    }
    const expired: { id: string; renewIndex: number }[] = [];
    const present = new Set<string>();
    for (const session of sessions.values()) {
      if (session.TTL === '') continue;
      const renewIndex = sessions.renewIndex(session.ID)!;
      let t = this.tracked.get(session.ID);
      if (t === undefined) {
        const parsed = parseGoDuration(session.TTL);
        const ttlMs = parsed.ok ? parsed.ns / 1_000_000 : 0;
        if (ttlMs <= 0) continue;
        t = { renewIndex, seenAtMs: nowMs, ttlMs };
        this.tracked.set(session.ID, t);
      } else if (t.renewIndex !== renewIndex) {
        t.renewIndex = renewIndex;
        t.seenAtMs = nowMs;
      }
      present.add(session.ID);
      if (nowMs - t.seenAtMs >= t.ttlMs * SESSION_TTL_MULTIPLIER && !this.expiring.has(session.ID)) {
        expired.push({ id: session.ID, renewIndex });
      }
    }
    for (const id of this.tracked.keys()) if (!present.has(id)) this.tracked.delete(id);
    await Promise.all(expired.map((e) => this.expire(e.id, e.renewIndex, nowMs)));
  }

  private async expire(id: string, renewIndex: number, nowMs: number): Promise<void> {
    this.expiring.add(id);
    try {
      await this.options.raft.propose(encodeCommand({ type: 'sessionDestroy', id, nowMs, ifRenewIndex: renewIndex }));
    } catch (err) {
      // Lost leadership or a full pipeline: the next round (on whichever server leads) tries again.
      this.options.onError?.(err);
    } finally {
      this.expiring.delete(id);
    }
  }
}
