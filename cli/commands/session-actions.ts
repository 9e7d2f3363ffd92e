// What `konsulctl session` does; its arguments, options and help are in session.ts, which imports
// this module only when the command runs.
import type { Command } from 'commander';
import { UsageError } from '../args.ts';
import { clientFor, handleErrors, writeStdout } from '../command-support.ts';
import { CliError, encodePathSegments, type KonsulClient } from '../http-client.ts';
import { formatGoDuration } from '../../lib/duration.ts';

/** A session as /v1/session answers it. */
export interface SessionJson {
  ID: string;
  Name: string;
  Node: string;
  LockDelay: number;
  Behavior: string;
  TTL: string;
  NodeChecks: string[] | null;
  ServiceChecks: { ID: string; Namespace?: string }[] | null;
  Checks?: string[];
  CreateIndex: number;
  ModifyIndex: number;
}

interface CreateOptions {
  name?: string;
  node?: string;
  ttl?: string;
  lockDelay?: string;
  behavior?: string;
  nodeCheck?: string[];
  serviceCheck?: string[];
  checks: boolean;
}

interface ListOptions {
  node?: string;
  format: 'table' | 'json';
}

interface InfoOptions {
  format: 'table' | 'json';
}

/** The body of PUT /v1/session/create for the options given; only what the user set. */
export function createBody(options: { name?: string; node?: string; ttl?: string; lockDelay?: string; behavior?: string; nodeCheck?: string[]; serviceCheck?: string[]; checks?: boolean }): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  if (options.name !== undefined) body['Name'] = options.name;
  if (options.node !== undefined) body['Node'] = options.node;
  if (options.ttl !== undefined) body['TTL'] = options.ttl;
  if (options.lockDelay !== undefined) body['LockDelay'] = options.lockDelay;
  if (options.behavior !== undefined) body['Behavior'] = options.behavior;
  if (options.checks === false) {
    // Consul: an empty Checks list removes the default serfHealth binding.
    body['Checks'] = [];
    body['NodeChecks'] = [];
  } else if (options.nodeCheck !== undefined) {
    body['NodeChecks'] = options.nodeCheck;
  }
  if (options.serviceCheck !== undefined) body['ServiceChecks'] = options.serviceCheck.map((id) => ({ ID: id }));
  return body;
}

/** PUT /v1/session/create; answers the new session's ID. */
export async function createSession(client: KonsulClient, body: Record<string, unknown>): Promise<string> {
  const response = await client.put('/v1/session/create', { body: JSON.stringify(body), contentType: 'application/json' });
  const answer = response.json() as { ID?: unknown } | null;
  if (typeof answer?.ID !== 'string') throw new CliError('Konsul answered /v1/session/create without an ID');
  return answer.ID;
}

export const runSessionCreate = handleErrors(async (options: CreateOptions, command: Command) => {
  if (options.checks === false && options.nodeCheck !== undefined) throw new UsageError('--node-check cannot be combined with --no-checks');
  const id = await createSession(clientFor(command), createBody(options));
  await writeStdout(`${id}\n`);
});

export const runSessionList = handleErrors(async (options: ListOptions, command: Command) => {
  const path = options.node !== undefined ? `/v1/session/node/${encodePathSegments(options.node)}` : '/v1/session/list';
  if (options.node === '') throw new UsageError('--node must not be empty');
  const sessions = readSessions((await clientFor(command).get(path)).json(), path);
  await writeStdout(options.format === 'json' ? `${JSON.stringify(sessions, null, 2)}\n` : formatSessionTable(sessions));
});

export const runSessionInfo = handleErrors(async (id: string, options: InfoOptions, command: Command) => {
  if (id === '') throw new UsageError('the session ID must not be empty');
  const path = `/v1/session/info/${encodeURIComponent(id)}`;
  const sessions = readSessions((await clientFor(command).get(path)).json(), path);
  if (sessions.length === 0) throw new CliError(`no session ${JSON.stringify(id)}`);
  await writeStdout(options.format === 'json' ? `${JSON.stringify(sessions[0], null, 2)}\n` : formatSessionTable(sessions));
});

export const runSessionRenew = handleErrors(async (id: string, _options: unknown, command: Command) => {
  if (id === '') throw new UsageError('the session ID must not be empty');
  const path = `/v1/session/renew/${encodeURIComponent(id)}`;
  const response = await clientFor(command).put(path, { acceptStatuses: [404] });
  if (response.status === 404) throw new CliError(`no session ${JSON.stringify(id)}`);
  const [renewed] = readSessions(response.json(), path);
  await writeStdout(`Renewed session ${id} (TTL ${renewed?.TTL || 'none'})\n`);
});

export const runSessionDestroy = handleErrors(async (id: string, _options: unknown, command: Command) => {
  if (id === '') throw new UsageError('the session ID must not be empty');
  await clientFor(command).put(`/v1/session/destroy/${encodeURIComponent(id)}`);
  await writeStdout(`Destroyed session ${id}\n`);
});

export function readSessions(value: unknown, path: string): SessionJson[] {
  if (!Array.isArray(value)) throw new CliError(`Konsul answered ${path} with something other than a JSON array`);
  return value.map((item) => {
    const s = item as Partial<SessionJson> | null;
    if (typeof s !== 'object' || s === null || typeof s.ID !== 'string' || typeof s.Node !== 'string') {
      throw new CliError(`Konsul answered ${path} with something other than sessions`);
    }
    return s as SessionJson;
  });
}

/** Aligned columns; empty cells are "-" and whitespace becomes "_", so each line splits into 7 fields. */
export function formatSessionTable(sessions: readonly SessionJson[]): string {
  const header = ['ID', 'Name', 'Node', 'TTL', 'Behavior', 'LockDelay', 'Checks'];
  const rows = sessions.map((s) => [
    s.ID,
    s.Name,
    s.Node,
    s.TTL,
    s.Behavior,
    typeof s.LockDelay === 'number' ? formatGoDuration(s.LockDelay) : String(s.LockDelay),
    [...(s.Checks ?? []), ...(s.NodeChecks ?? []), ...(s.ServiceChecks ?? []).map((c) => c.ID)].join(','),
  ]);
  const cells = [header, ...rows].map((row) => row.map((v) => (v.trim() === '' ? '-' : v.trim().replace(/\s+/g, '_'))));
  const widths = header.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) => row.map((v, i) => (i === row.length - 1 ? v : v.padEnd(widths[i]! + 2))).join('').trimEnd() + '\n').join('');
}
