// The replicated state machine of the simulation: a tiny key/value map plus a hash chain over every
// applied entry (no-ops and membership changes included) and the membership as of the last applied
// entry. The chain at index i equals the log's prefix hash at i, so it lets the checkers compare
// states across nodes, snapshots and restarts in O(1).
import type { ConfChange, ConfState, Entry, NodeId, Snapshot } from '../core/types.ts';
import { SimViolation } from './checkers.ts';
import { chainNext, entryDigest, GENESIS_CHAIN } from './hash.ts';

/** A command is 8 bytes: the client's unique command id and the key it writes. */
export function encodeCommand(cmd: number, key: number): Uint8Array {
  const bytes = new Uint8Array(8);
  const view = new DataView(bytes.buffer);
  view.setUint32(0, cmd);
  view.setUint32(4, key);
  return bytes;
}

/** The command id of a normal entry, or -1 for an empty (no-op) one. */
export function commandOf(data: Uint8Array): number {
  if (data.length !== 8) return -1;
  return ((data[0]! << 24) | (data[1]! << 16) | (data[2]! << 8) | data[3]!) >>> 0;
}

function keyOf(data: Uint8Array): number {
  return ((data[4]! << 24) | (data[5]! << 16) | (data[6]! << 8) | data[7]!) >>> 0;
}

export interface KvValue {
  readonly cmd: number;
  /** The log index that wrote it. */
  readonly index: number;
}

interface SnapshotData {
  readonly index: number;
  readonly term: number;
  readonly chain: number;
  readonly kv: [number, number, number][];
}

export class KvStateMachine {
  applied = 0;
  appliedTerm = 0;
  chain = GENESIS_CHAIN;
  readonly kv = new Map<number, KvValue>();
  private voters = new Set<NodeId>();
  private learners = new Set<NodeId>();

  /** Applies the next entry; returns the command id it carried (-1 for none). */
  apply(e: Entry): number {
    if (e.index !== this.applied + 1) throw new SimViolation('hostContract', `entry ${e.index} handed out for applying after ${this.applied}`);
    this.chain = chainNext(this.chain, e.index, e.term, entryDigest(e));
    this.applied = e.index;
    this.appliedTerm = e.term;
    if (e.type === 'confChange') {
      this.applyConfChange(e.change);
      return -1;
    }
    const cmd = commandOf(e.data);
    if (cmd >= 0) this.kv.set(keyOf(e.data), { cmd, index: e.index });
    return cmd;
  }

  /** The same rules as the core's (single-server changes, learners promoted by addVoter). */
  private applyConfChange(change: ConfChange): void {
    switch (change.type) {
      case 'addVoter':
        this.learners.delete(change.node);
        this.voters.add(change.node);
        break;
      case 'addLearner':
        if (!this.voters.has(change.node)) this.learners.add(change.node);
        break;
      case 'removeNode':
        this.voters.delete(change.node);
        this.learners.delete(change.node);
        break;
    }
  }

  confState(): ConfState {
    return { voters: [...this.voters].sort(), learners: [...this.learners].sort() };
  }

  encode(): Uint8Array {
    const data: SnapshotData = {
      index: this.applied,
      term: this.appliedTerm,
      chain: this.chain,
      kv: [...this.kv].map(([k, v]) => [k, v.cmd, v.index]),
    };
    return new TextEncoder().encode(JSON.stringify(data));
  }

  static restore(snapshot: Snapshot): KvStateMachine {
    const sm = new KvStateMachine();
    const { meta } = snapshot;
    sm.voters = new Set(meta.confState.voters);
    sm.learners = new Set(meta.confState.learners);
    if (meta.index === 0) return sm;
    const data = JSON.parse(new TextDecoder().decode(snapshot.data)) as SnapshotData;
    if (data.index !== meta.index || data.term !== meta.term) {
      throw new SimViolation('hostContract', `snapshot data is of ${data.index}/${data.term} but its metadata says ${meta.index}/${meta.term}`);
    }
    sm.applied = data.index;
    sm.appliedTerm = data.term;
    sm.chain = data.chain;
    for (const [k, cmd, index] of data.kv) sm.kv.set(k, { cmd, index });
    return sm;
  }
}
