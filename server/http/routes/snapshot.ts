// /v1/snapshot: save and restore the whole state (developer.hashicorp.com/consul/api-docs/snapshot).
// - GET answers a gzipped tar archive (server/snapshot-archive.ts, docs/adr/0008-snapshot-archive.md)
//   of every table at one applied index, which X-Consul-Index names. Default consistency waits for
//   a ReadIndex round, so the archive holds every acknowledged write; ?stale answers from this
//   server's state at once (also without a leader), with X-Consul-LastContact.
// - PUT takes such an archive, checks it completely (hashes, format, the FSM snapshot's own
//   checksum and structure) and replicates it as one Raft command: every server replaces its whole
//   state at the same log index, and every blocked query wakes. 200 with an empty body.
import type { FastifyPluginAsync } from 'fastify';
import { encodeCommand } from '../../../fsm/commands.ts';
import type { ApplyResult } from '../../../fsm/konsul-fsm.ts';
import { decodeSnapshot, SNAPSHOT_FORMAT_VERSION, SnapshotFormatError } from '../../../fsm/snapshot.ts';
import { HttpError } from '../../errors.ts';
import { readSnapshotArchive, SnapshotArchiveError, writeSnapshotArchive } from '../../snapshot-archive.ts';
import { readGate, setQueryMeta } from '../consistency.ts';
import type { ServerContext } from '../context.ts';
import { parseQueryOptions, type Query } from '../query-options.ts';

/**
 * The largest state a restore takes. The restore is one Raft entry holding the state (a binary
 * command, fsm/commands.ts), which must fit one transport frame (64 MiB) next to a full append
 * batch (1 MiB); every server also keeps that entry in memory until the log is compacted. Saving
 * has no limit. docs/adr/0008-snapshot-archive.md.
 */
export const MAX_RESTORE_STATE_BYTES = 48 * 1024 * 1024;
/** The compressed upload: never larger than the state it holds plus the tar framing. */
const MAX_ARCHIVE_BYTES = MAX_RESTORE_STATE_BYTES + 1024 * 1024;

export const snapshotRoutes: FastifyPluginAsync<{ ctx: ServerContext }> = async (app, { ctx }) => {
  const { fsm, raft } = ctx;
  const tooLarge = (size: number) => new HttpError(413, `Snapshot archive too large (${size} bytes); a restore takes at most ${MAX_RESTORE_STATE_BYTES} bytes of state`);

  // Archives are binary whatever the content type (curl --data-binary sends form encoding).
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: MAX_ARCHIVE_BYTES }, (_req, body, done) => done(null, body));
  app.addHook('onRequest', async (request) => {
    const length = Number(request.headers['content-length'] ?? 0);
    if (request.method === 'PUT' && length > MAX_ARCHIVE_BYTES) throw tooLarge(length);
  });
  app.addHook('onError', async (_request, _reply, err) => {
    if ((err as { code?: string }).code === 'FST_ERR_CTP_BODY_TOO_LARGE') throw tooLarge(MAX_ARCHIVE_BYTES + 1);
  });

  app.get('/v1/snapshot', async (request, reply) => {
    const opts = parseQueryOptions(request.query as Query);
    await readGate(ctx, opts.consistency);
    // Synchronous from here on: the bytes and the index describe the same state.
    const index = fsm.appliedIndex;
    const state = fsm.snapshot();
    const term = raft.status().term;
    const nowMs = Date.now();
    const archive = writeSnapshotArchive(
      {
        Version: 1,
        ID: `${term}-${index}-${nowMs}`,
        Index: index,
        Term: term,
        FormatVersion: SNAPSHOT_FORMAT_VERSION,
        KonsulVersion: ctx.version,
        CreatedAt: new Date(nowMs).toISOString(),
      },
      state,
      nowMs,
    );
    setQueryMeta(reply, ctx, index, opts.consistency);
    return reply.type('application/x-gzip').send(archive);
  });

  app.put('/v1/snapshot', async (request, reply) => {
    const body = request.body instanceof Buffer ? request.body : Buffer.alloc(0);
    if (body.length === 0) throw new HttpError(400, 'Missing snapshot archive in the request body');
    let state: Uint8Array;
    try {
      state = readSnapshotArchive(body, { maxStateBytes: MAX_RESTORE_STATE_BYTES }).state;
      // Everything the FSM will check, checked here: a bad snapshot never reaches the log.
      decodeSnapshot(state);
    } catch (err) {
      if (err instanceof SnapshotArchiveError) throw new HttpError(err.tooLarge ? 413 : 400, err.message);
      if (err instanceof SnapshotFormatError) throw new HttpError(400, `failed to restore snapshot: ${err.message}`);
      throw err;
    }
    const result = (await ctx.cluster.propose(encodeCommand({ type: 'snapshotRestore', state }))) as ApplyResult;
    if (result !== true) {
      const error = typeof result === 'object' ? result.error : 'the snapshot was not restored';
      throw new HttpError(500, `failed to restore snapshot: ${error}`);
    }
    return reply.code(200).type('text/plain; charset=utf-8').send('');
  });

  app.route({
    method: ['POST', 'DELETE', 'PATCH'],
    url: '/v1/snapshot',
    handler: async (request) => {
      throw new HttpError(405, `method ${request.method} not allowed`);
    },
  });
};
