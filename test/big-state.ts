// Builds the state a restore test starts from, without a server: N keys loaded into the state
// machine's KV table, then commands applied as the Raft host would apply them (a few keys, a
// catalog node with a check, a session holding a lock), then its snapshot wrapped in an archive file
// by the server's own writer. A million keys take a few seconds this way, instead of half a minute
// over HTTP.
import { createHash } from 'node:crypto';
import { createWriteStream, writeFileSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { encodeBase64 } from '../fsm/base64.ts';
import { encodeCommand, type Command } from '../fsm/commands.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import { SNAPSHOT_FORMAT_VERSION } from '../fsm/snapshot.ts';
import { packRecord } from '../fsm/state/kv-record.ts';
import { KvTableBuilder } from '../fsm/state/kv.ts';
import { snapshotArchiveStream } from '../server/snapshot-archive.ts';

export const APP_NODE = 'app-node';
export const SESSION_ID = '5e551011-0000-4000-8000-00000000beef';

export interface BigStateOptions {
  readonly keys: number;
  /** Key i is `${prefix}${i padded to 8 digits}`. */
  readonly prefix?: string;
  /** The value of key i (default: 100 bytes naming it). */
  readonly value?: (i: number) => string;
  /** Extra keys, written last (e.g. markers a test looks for). */
  readonly extra?: Readonly<Record<string, string>>;
  /** Raft indexes skipped before the first command, to start far ahead of the restoring cluster. */
  readonly startIndex?: number;
}

export interface BigState {
  readonly fsm: KonsulFsm;
  /** Writes the archive of the current state to `path`. */
  writeArchive(path: string): Promise<void>;
}

export function buildBigState(options: BigStateOptions): BigState {
  const fsm = new KonsulFsm();
  let index = 0;
  for (let i = 0; i < (options.startIndex ?? 0); i++) fsm.applyNoop(++index);
  const apply = (command: Command): void => {
    const result = fsm.apply(++index, encodeCommand(command)) as unknown;
    const r = result as { ok?: boolean; errors?: unknown[] | null };
    if (result === false || r.ok === false || (Array.isArray(r.errors) && r.errors.length > 0)) throw new Error(`${command.type} failed: ${JSON.stringify(result)}`);
  };
  const prefix = options.prefix ?? 'big/';
  const value = options.value ?? ((i: number) => `value of key ${i} `.padEnd(100, '.'));
  // The bulk goes straight into the table (as a snapshot install would put it there): through
  // transactions a million keys take ~20 s, this way ~2 s. Key i was written at index start + i.
  const bulk = new KvTableBuilder();
  for (let i = 0; i < options.keys; i++) {
    const at = index + 1 + i;
    bulk.addEntry(`${prefix}${String(i).padStart(8, '0')}`, packRecord({ createIndex: at, modifyIndex: at, lockIndex: 0, flags: BigInt(i % 3 === 0 ? 0 : i), session: undefined }, Buffer.from(value(i))));
  }
  fsm.kv.loadBuilt(bulk, index + options.keys);
  for (let i = 0; i < options.keys; i++) fsm.applyNoop(++index);
  for (const [key, v] of Object.entries(options.extra ?? {})) apply({ type: 'kvSet', key, value: encodeBase64(Buffer.from(v)), flags: '42' });
  const check = { CheckID: 'app-alive', Name: 'app-alive', Status: 'passing' as const, Notes: '', Output: 'ok', ServiceID: '', Type: '', Interval: '', Timeout: '', Definition: {} };
  apply({ type: 'catalogRegister', node: { Node: APP_NODE, ID: '', Address: '10.1.2.3', Datacenter: 'dc1', TaggedAddresses: {}, Meta: { role: 'app' } }, skipNodeUpdate: false, checks: [check] });
  apply({ type: 'sessionCreate', id: SESSION_ID, name: 'leader-election', node: APP_NODE, lockDelayNs: 15e9, behavior: 'release', ttl: '', nodeChecks: ['app-alive'], serviceChecks: null, checks: null });
  apply({ type: 'kvSet', key: 'locks/leader', value: encodeBase64(Buffer.from('app-1')), flags: '7', acquire: SESSION_ID });
  return {
    fsm,
    async writeArchive(path: string): Promise<void> {
      const state = fsm.snapshot();
      const statePath = `${path}.state`;
      writeFileSync(statePath, state);
      const meta = { Version: 1, ID: `1-${fsm.appliedIndex}-0`, Index: fsm.appliedIndex, Term: 1, FormatVersion: SNAPSHOT_FORMAT_VERSION, KonsulVersion: 'test', CreatedAt: new Date(0).toISOString() };
      const sha256 = createHash('sha256').update(state).digest('hex');
      await pipeline(snapshotArchiveStream(meta, { path: statePath, bytes: state.length, sha256 }, 0), createWriteStream(path));
    },
  };
}
