// Membership as it is recorded in the log. A node's configuration is the one in the latest
// conf-change entry of its log, committed or not (Raft thesis §4.1), falling back to the
// snapshot's; when a conflicting suffix is overwritten, the configuration reverts with it.
import { invariant } from './errors.ts';
import type { ConfChange, ConfState, Entry } from './types.ts';

export function applyChange(conf: ConfState, change: ConfChange): ConfState {
  const voters = new Set(conf.voters);
  const learners = new Set(conf.learners);
  switch (change.type) {
    case 'addVoter':
      learners.delete(change.node);
      voters.add(change.node);
      break;
    case 'addLearner':
      if (!voters.has(change.node)) learners.add(change.node);
      break;
    case 'removeNode':
      voters.delete(change.node);
      learners.delete(change.node);
      break;
  }
  return { voters: [...voters].sort(), learners: [...learners].sort() };
}

/**
 * The log every founding member of a new cluster starts with: one conf change per member at term 1,
 * all committed. Identical on every founder, so it needs no election; a server that joins later
 * receives these entries (or a snapshot) like any other and derives the membership from them.
 */
export function bootstrapEntries(conf: ConfState): Entry[] {
  const changes: ConfChange[] = [
    ...[...conf.voters].sort().map((node): ConfChange => ({ type: 'addVoter', node })),
    ...[...conf.learners].sort().map((node): ConfChange => ({ type: 'addLearner', node })),
  ];
  return changes.map((change, i) => ({ type: 'confChange', index: i + 1, term: 1, change }));
}

interface Recorded {
  /** Log index of the conf change (or of the snapshot, for the base). */
  readonly index: number;
  readonly conf: ConfState;
}

/** The configurations found in the log, oldest first; the first is the snapshot's (the base). */
export class ConfigHistory {
  private records: Recorded[];

  constructor(baseIndex: number, baseConf: ConfState) {
    this.records = [{ index: baseIndex, conf: normalize(baseConf) }];
  }

  /**
   * Starts over from a snapshot. Configurations up to `handedOut` (what the host may be applying
   * or installing now) are kept: until the host has installed this snapshot it may still ask for
   * the membership at its applied index.
   */
  reset(baseIndex: number, baseConf: ConfState, handedOut = baseIndex): void {
    const kept = this.records.filter((r) => r.index <= handedOut && r.index < baseIndex);
    this.records = [...kept, { index: baseIndex, conf: normalize(baseConf) }];
  }

  current(): ConfState {
    return this.records[this.records.length - 1]!.conf;
  }

  /** Index of the latest conf-change entry in the log (the base index if there is none). */
  latestIndex(): number {
    return this.records[this.records.length - 1]!.index;
  }

  /** Forgets configurations from entries at or after `index` (they were overwritten). */
  truncateFrom(index: number): void {
    invariant(index > this.records[0]!.index, () => `cannot truncate configurations at ${index}, at or below the snapshot ${this.records[0]!.index}`);
    while (this.records.length > 1 && this.records[this.records.length - 1]!.index >= index) this.records.pop();
  }

  /** Records the conf changes among newly written entries (which follow everything recorded). */
  record(entries: readonly Entry[]): boolean {
    let changed = false;
    for (const e of entries) {
      if (e.type !== 'confChange') continue;
      this.records.push({ index: e.index, conf: applyChange(this.current(), e.change) });
      changed = true;
    }
    return changed;
  }

  /** The configuration in force at `index` (what a snapshot at `index` must record). */
  at(index: number): ConfState {
    invariant(index >= this.records[0]!.index, () => `no configuration known at ${index}, below ${this.records[0]!.index}`);
    let found = this.records[0]!;
    for (const r of this.records) {
      if (r.index > index) break;
      found = r;
    }
    return found.conf;
  }

  /** Drops configurations superseded at or before `index` (everything up to it is applied). */
  compact(index: number): void {
    let keepFrom = 0;
    for (let i = 0; i < this.records.length; i++) if (this.records[i]!.index <= index) keepFrom = i;
    if (keepFrom > 0) this.records = this.records.slice(keepFrom);
  }
}

function normalize(conf: ConfState): ConfState {
  return { voters: [...conf.voters].sort(), learners: [...conf.learners].sort() };
}
