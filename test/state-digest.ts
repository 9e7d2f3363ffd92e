// A canonical digest of the state inside a snapshot archive, for tests that compare a restored
// cluster with the state it was restored from, at any size (a million keys hash in a stream).
//
// Raft indexes (CreateIndex/ModifyIndex and the tables' indexes) are left out unless asked for: a
// restore into another cluster moves them into that cluster's index space (fsm/restore.ts). What
// is hashed: every KV entry's key, flags, session, LockIndex and value, in key order; the
// sessions; and the catalog nodes named in `nodes` with their services and checks.
import { createHash } from 'node:crypto';
import { SnapshotDecoder } from '../fsm/snapshot.ts';
import { flagsOf, lockIndexOf, sessionOf, valueStart, createIndexOf, modifyIndexOf } from '../fsm/state/kv-record.ts';
import { readSnapshotArchiveStream } from '../server/snapshot-archive.ts';

export interface StateDigest {
  readonly kvEntries: number;
  /** SHA-256 of the KV entries' canonical form... */
  readonly kv: string;
  /** ...and with each entry's CreateIndex and ModifyIndex (servers of one cluster agree on them exactly). */
  readonly kvWithIndexes: string;
  /** The sessions and chosen catalog nodes, as canonical JSON (small: compared as text). */
  readonly sessions: string;
  readonly catalog: string;
  /** The archive's applied index. */
  readonly index: number;
}

export interface DigestOptions {
  /** Catalog nodes to include (others, e.g. the servers' own, differ between clusters). */
  readonly nodes?: readonly string[];
  /** Keep the indexes in the sessions and catalog too. */
  readonly withIndexes?: boolean;
}

export async function archiveDigest(archive: AsyncIterable<Uint8Array>, options: DigestOptions = {}): Promise<StateDigest> {
  const hash = createHash('sha256');
  const indexed = createHash('sha256');
  let kvEntries = 0;
  const decoder = new SnapshotDecoder({
    kvEntry: (key, record) => {
      kvEntries++;
      const entry = Buffer.concat([Buffer.from(`${key}\0${flagsOf(record)}\0${sessionOf(record) ?? ''}\0${lockIndexOf(record)}\0`), Buffer.from(record.slice(valueStart(record)), 'latin1'), Buffer.from([0])]);
      hash.update(entry);
      indexed.update(entry);
      indexed.update(`${createIndexOf(record)}/${modifyIndexOf(record)}\0`);
    },
    kvTombstone: () => undefined,
  });
  await readSnapshotArchiveStream(archive, { onState: (piece) => decoder.write(piece) });
  const tables = decoder.finish();
  const strip = (value: unknown): unknown =>
    options.withIndexes === true ? value : JSON.parse(JSON.stringify(value, (k, v: unknown) => (/index$/i.test(k) ? undefined : v)));
  const nodes = new Set(options.nodes ?? []);
  const catalog = (tables.catalog?.nodes ?? []).filter((n) => nodes.has(n.node.Node));
  return {
    kvEntries,
    kv: hash.digest('hex'),
    kvWithIndexes: indexed.digest('hex'),
    sessions: JSON.stringify(strip(tables.sessions?.sessions.map((s) => s.session) ?? [])),
    catalog: JSON.stringify(strip(catalog)),
    index: tables.appliedIndex,
  };
}
