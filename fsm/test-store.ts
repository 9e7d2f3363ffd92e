// Test helper: a KonsulFsm driven like the Raft host drives it (encoded commands at consecutive
// indexes), with short verbs so that tests read like Consul API calls.

import { encodeCommand, kvSetCommand } from './commands.ts';
import { KonsulFsm, type FsmResult } from './konsul-fsm.ts';
import type { SessionLookup } from './state/kv.ts';

const encoder = new TextEncoder();
const decoder = new TextDecoder();

export const utf8 = (s: string): Uint8Array => encoder.encode(s);
export const text = (b: Uint8Array | undefined): string | undefined => (b === undefined ? undefined : decoder.decode(b));

/** A SessionLookup over a fixed, editable set of session ids. */
export class FakeSessions implements SessionLookup {
  readonly ids: Set<string>;
  constructor(ids: readonly string[] = []) {
    this.ids = new Set(ids);
  }
  sessionExists(sessionId: string): boolean {
    return this.ids.has(sessionId);
  }
}

export interface PutOptions {
  readonly flags?: bigint;
  readonly cas?: number;
  readonly acquire?: string;
  readonly release?: string;
}

export class TestStore {
  readonly fsm: KonsulFsm;

  constructor(sessions?: SessionLookup) {
    this.fsm = new KonsulFsm(sessions ? { sessions } : {});
  }

  /** The index the next command will be applied at. */
  get nextIndex(): number {
    return this.fsm.appliedIndex + 1;
  }

  get kv() {
    return this.fsm.kv;
  }

  /** PUT /v1/kv/:key */
  put(key: string, value: string, options: PutOptions = {}): FsmResult {
    return this.fsm.apply(this.nextIndex, encodeCommand(kvSetCommand({ key, value: utf8(value), ...options })));
  }

  /** DELETE /v1/kv/:key[?cas=] */
  del(key: string, cas?: number): FsmResult {
    return this.fsm.apply(this.nextIndex, encodeCommand({ type: 'kvDelete', key, ...(cas !== undefined ? { cas } : {}) }));
  }

  /** DELETE /v1/kv/:prefix?recurse */
  delTree(prefix: string): FsmResult {
    return this.fsm.apply(this.nextIndex, encodeCommand({ type: 'kvDeleteTree', prefix }));
  }

  reap(upToIndex: number): FsmResult {
    return this.fsm.apply(this.nextIndex, encodeCommand({ type: 'kvReapTombstones', upToIndex }));
  }

  /** An entry without a command (leader no-op, membership change). */
  noop(): void {
    this.fsm.applyNoop(this.nextIndex);
  }

  /** The value at `key` as text, or undefined. */
  value(key: string): string | undefined {
    return text(this.fsm.kv.get(key)?.Value);
  }
}
