// /v1/snapshot: save and restore the whole state (developer.hashicorp.com/consul/api-docs/snapshot).
// - GET answers a gzipped tar archive (server/snapshot-archive.ts, docs/adr/0008-snapshot-archive.md)
//   of every table at one applied index, which X-Consul-Index names. Default consistency waits for
//   a ReadIndex round, so the archive holds every acknowledged write; ?stale answers from this
//   server's state at once (also without a leader), with X-Consul-LastContact. The state is
//   encoded from a copy-on-write view into a staging file in time slices, then streamed out.
// - PUT takes such an archive as a stream, stages its state in a file while checking everything
//   (hashes, format, the FSM snapshot's own structure and checksum), and only then replicates it
//   as a staged restore: restoreBegin, chunks, restoreCommit (docs/adr/0016-restore-at-any-size.md).
//   Every server replaces its whole state at the commit's log index, and every blocked query wakes.
//   200 with an empty body.
import type { Readable } from 'node:stream';
import type { FastifyPluginAsync } from 'fastify';
import { SNAPSHOT_FORMAT_VERSION, SnapshotFormatError } from '../../../fsm/snapshot.ts';
import { parseQueryOptions, type Query } from '../../../http/query-options.ts';
import { readGate, setQueryMeta } from '../../../http/read-endpoint.ts';
import { methodNotAllowed } from '../../../http/reply.ts';
import { readQuery, writeQuery } from '../../../http/schemas.ts';
import { badRequest, KonsulError } from '../../../lib/errors.ts';
import { SnapshotArchiveError, snapshotArchiveStream } from '../../snapshot-archive.ts';
import { replicateRestore, RestoreFailedError } from '../../snapshot-restore.ts';
import { SnapshotStaging } from '../../snapshot-staging.ts';
import { serverReads } from '../consistency.ts';
import type { ServerContext } from '../context.ts';

/** The largest state a restore takes: a guard against filling the disk, far above any real store. */
export const MAX_RESTORE_STATE_BYTES = 16 * 1024 * 1024 * 1024;

export const snapshotRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm, raft } = ctx;
  const reads = serverReads(ctx);
  const staging = new SnapshotStaging(ctx.config.dataDir);
  await staging.reset();
  // One save encodes at a time (each is a full pass over the state); others wait their turn.
  let encoding: Promise<unknown> = Promise.resolve();

  // Archives are binary whatever the content type (curl --data-binary sends form encoding), and
  // read as a stream: the route decides what to keep (so not the platform's raw-body reader, which buffers).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (_request, payload, done) => done(null, payload));

  // A read, but not through readEndpoint: the gate runs in this save's turn, and the index (the
  // view's) is known only once the gate let it through; the headers go out with the archive.
  app.get<{ Querystring: Query }>('/v1/snapshot', { schema: { querystring: readQuery() } }, async (request, reply) => {
    const opts = parseQueryOptions(request.query);
    const turn = encoding.then(async () => {
      await readGate(reads, opts.consistency);
      // Synchronous from the gate to the view: the view is the state at the index the gate allowed.
      const view = fsm.snapshotView();
      try {
        return { view, term: raft.status().term, file: await staging.writeView(view) };
      } finally {
        view.release();
      }
    });
    encoding = turn.catch(() => undefined);
    const { view, term, file } = await turn;
    const nowMs = Date.now();
    const archive = snapshotArchiveStream(
      {
        Version: 1,
        ID: `${term}-${view.index}-${nowMs}`,
        Index: view.index,
        Term: term,
        FormatVersion: SNAPSHOT_FORMAT_VERSION,
        KonsulVersion: ctx.version,
        CreatedAt: new Date(nowMs).toISOString(),
      },
      file,
      nowMs,
    );
    // Sent, failed or cut off by the client: the staging file goes either way.
    archive.once('close', () => void staging.remove(file));
    setQueryMeta(reply, reads, view.index, opts.consistency);
    return reply.type('application/x-gzip').send(archive);
  });

  app.put<{ Querystring: Query; Body: Readable | undefined }>('/v1/snapshot', { schema: { querystring: writeQuery() } }, async (request, reply) => {
    const archive = request.body;
    if (request.headers['content-length'] === '0' || archive === undefined) throw badRequest('Missing snapshot archive in the request body');
    // Refused before the upload is staged; the restore's own begin refuses a race with another one.
    const open = fsm.restoreProgress();
    if (open !== null) throw new KonsulError('conflict', `failed to restore snapshot: a restore is already in progress (${open.id}, begun at index ${open.beginIndex})`);
    let staged: Awaited<ReturnType<SnapshotStaging['stageArchive']>>;
    try {
      staged = await staging.stageArchive(archive, { maxStateBytes: MAX_RESTORE_STATE_BYTES });
    } catch (err) {
      if (err instanceof SnapshotArchiveError) throw new KonsulError(err.tooLarge ? 'tooLarge' : 'badRequest', err.message);
      if (err instanceof SnapshotFormatError) throw badRequest(`failed to restore snapshot: ${err.message}`);
      throw err;
    }
    try {
      await replicateRestore({ propose: (command) => ctx.cluster.propose(command), file: staged.file });
    } catch (err) {
      if (err instanceof RestoreFailedError) throw new KonsulError(err.conflict ? 'conflict' : 'internal', `failed to restore snapshot: ${err.message}`);
      throw err;
    } finally {
      await staging.remove(staged.file);
    }
    return reply.code(200).type('text/plain; charset=utf-8').send('');
  });

  methodNotAllowed(app, '/v1/snapshot', ['GET', 'PUT']);
};
