// The simulated network: messages in flight, bucketed by the tick they are due. Faults are drawn
// from the run's PRNG: loss, duplication, jitter and late delivery (which reorders), plus
// partitions that come and heal (symmetric, one-directional, one node or the leader isolated), and
// cuts the simulation places on purpose (splitOff: one given set of nodes from the rest).
// Whether a message is lost is decided when it is due, so a partition that starts while a message
// is in flight cuts it, and healing the network stops further losses at once.
import type { Prng } from '../core/prng.ts';
import type { Message } from '../core/types.ts';
import type { FaultProfile } from './profile.ts';

export interface InFlight {
  readonly message: Message;
  readonly from: number;
  readonly to: number;
  /** The sender's incarnation: transport feedback (snapshot reports) goes only to that process. */
  readonly fromIncarnation: number;
}

export type PartitionKind = 'split' | 'oneWay' | 'isolateNode' | 'isolateLeader';

export class Network {
  private readonly prng: Prng;
  private readonly profile: FaultProfile;
  private readonly size: number;
  private readonly buckets = new Map<number, InFlight[]>();
  /** blocked[from * size + to]: messages from -> to are cut. */
  private readonly blocked: Uint8Array;
  private blockedLinks = 0;
  /** False once the liveness phase starts: no more loss, duplication, jitter or reordering. */
  faulty = true;
  inFlight = 0;

  constructor(prng: Prng, profile: FaultProfile, size: number) {
    this.prng = prng;
    this.profile = profile;
    this.size = size;
    this.blocked = new Uint8Array(size * size);
  }

  /** Queues a message; returns whether a duplicate was queued too. */
  send(now: number, flight: InFlight): boolean {
    this.enqueue(now + this.delay(), flight);
    // A snapshot travels on a reliable stream: it may fail, but never arrives twice.
    if (this.faulty && flight.message.type !== 'snap' && this.prng.chance(this.profile.duplicate)) {
      this.enqueue(now + this.delay(), flight);
      return true;
    }
    return false;
  }

  private delay(): number {
    const p = this.profile;
    if (!this.faulty) return 1;
    let d = 1 + (p.jitter > 0 ? this.prng.int(p.jitter + 1) : 0);
    if (p.late > 0 && this.prng.chance(p.late)) d += 1 + this.prng.int(p.lateTicks);
    return d;
  }

  private enqueue(at: number, flight: InFlight): void {
    let bucket = this.buckets.get(at);
    if (!bucket) {
      bucket = [];
      this.buckets.set(at, bucket);
    }
    bucket.push(flight);
    this.inFlight++;
  }

  /** Removes and returns the messages due at `now`, in delivery order. */
  due(now: number): InFlight[] {
    const bucket = this.buckets.get(now);
    if (!bucket) return [];
    this.buckets.delete(now);
    this.inFlight -= bucket.length;
    if (this.faulty && this.profile.shuffle) {
      for (let i = bucket.length - 1; i > 0; i--) {
        const j = this.prng.int(i + 1);
        const tmp = bucket[i]!;
        bucket[i] = bucket[j]!;
        bucket[j] = tmp;
      }
    }
    return bucket;
  }

  /** Why a due message does not arrive: 'partition', 'loss', or null if it arrives. */
  lossReason(flight: InFlight): 'partition' | 'loss' | null {
    if (this.blockedLinks > 0 && this.blocked[flight.from * this.size + flight.to] === 1) return 'partition';
    if (this.faulty && this.profile.loss > 0 && this.prng.chance(this.profile.loss)) return 'loss';
    return null;
  }

  /** Whether messages from -> to are cut. */
  isCut(from: number, to: number): boolean {
    return this.blockedLinks > 0 && this.blocked[from * this.size + to] === 1;
  }

  partitioned(): boolean {
    return this.blockedLinks > 0;
  }

  private block(from: number, to: number): void {
    const k = from * this.size + to;
    if (from !== to && this.blocked[k] === 0) {
      this.blocked[k] = 1;
      this.blockedLinks++;
    }
  }

  /**
   * Cuts the network. `members` are the node numbers that take part; `leader` is the current
   * leader's number or -1. Returns a description of the cut, or null if it made no sense.
   */
  partition(kind: PartitionKind, members: readonly number[], leader: number, name: (n: number) => string): string | null {
    if (members.length < 2) return null;
    const shuffled = [...members];
    for (let i = shuffled.length - 1; i > 0; i--) {
      const j = this.prng.int(i + 1);
      [shuffled[i], shuffled[j]] = [shuffled[j]!, shuffled[i]!];
    }
    const isolate = (n: number): void => {
      for (let other = 0; other < this.size; other++) {
        this.block(n, other);
        this.block(other, n);
      }
    };
    switch (kind) {
      case 'split': {
        const cut = 1 + this.prng.int(shuffled.length - 1);
        const side = new Set(shuffled.slice(0, cut));
        for (let a = 0; a < this.size; a++) {
          for (let b = 0; b < this.size; b++) if (side.has(a) !== side.has(b)) this.block(a, b);
        }
        return `split {${[...side].sort((x, y) => x - y).map(name).join(',')}} from the rest`;
      }
      case 'oneWay': {
        // Some links fail in one direction only: the sender's messages vanish, the replies flow.
        const links: string[] = [];
        const count = 1 + this.prng.int(shuffled.length);
        for (let i = 0; i < count; i++) {
          const from = shuffled[this.prng.int(shuffled.length)]!;
          const to = shuffled[this.prng.int(shuffled.length)]!;
          if (from === to) continue;
          this.block(from, to);
          links.push(`${name(from)}->${name(to)}`);
        }
        return links.length > 0 ? `one-way cuts ${links.join(' ')}` : null;
      }
      case 'isolateNode': {
        const n = shuffled[0]!;
        isolate(n);
        return `isolate ${name(n)}`;
      }
      case 'isolateLeader': {
        if (leader < 0) return null;
        isolate(leader);
        return `isolate leader ${name(leader)}`;
      }
    }
  }

  /**
   * Cuts `side` off from every other node (both directions), replacing any cut in place. Returns a
   * description, or null if one side would be empty.
   */
  splitOff(side: ReadonlySet<number>, name: (n: number) => string): string | null {
    if (side.size === 0 || side.size >= this.size) return null;
    this.heal();
    for (let a = 0; a < this.size; a++) {
      for (let b = 0; b < this.size; b++) if (side.has(a) !== side.has(b)) this.block(a, b);
    }
    return `{${[...side].sort((x, y) => x - y).map(name).join(',')}} from the rest`;
  }

  heal(): void {
    this.blocked.fill(0);
    this.blockedLinks = 0;
  }
}
