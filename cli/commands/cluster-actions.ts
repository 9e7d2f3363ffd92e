// What `konsulctl cluster` does; its arguments, options and help are in cluster.ts, which imports
// this module only when the command runs.
import type { Command } from 'commander';
import { parseAddress } from '../../lib/host-port.ts';
import { UsageError } from '../args.ts';
import { clientFor, handleErrors, writeStdout } from '../command-support.ts';
import { CliError, encodePathSegments, type KonsulClient } from '../http-client.ts';
import { formatRows } from './status-actions.ts';

type Format = 'table' | 'json';

export const runClusterStatus = handleErrors(async (_options: unknown, command: Command) => {
  const path = '/v1/cluster/status';
  const body = await getJson(clientFor(command), path);
  await output(command, body, () => formatStatus(readStatus(body, path)));
});

export const runClusterLeader = handleErrors(async (_options: unknown, command: Command) => {
  const path = '/v1/cluster/leader';
  const body = await getJson(clientFor(command), path);
  const leader = readAddresses(Fields.of(body, path));
  if (leader.id === '') throw new CliError('no cluster leader');
  await output(command, body, () => formatRows([['ID', leader.id], ['Address', leader.address], ['HTTPAddress', leader.httpAddress]]));
});

export const runClusterPeers = handleErrors(async (_options: unknown, command: Command) => {
  const path = '/v1/cluster/peers';
  const body = await getJson(clientFor(command), path);
  await output(command, body, () => formatPeers(readPeers(body, path)));
});

export const runClusterStats = handleErrors(async (_options: unknown, command: Command) => {
  const path = '/v1/cluster/stats';
  const body = await getJson(clientFor(command), path);
  await output(command, body, () => formatStats(readStats(body, path)));
});

export const runClusterJoin = handleErrors(async (rawAddress: string, _options: unknown, command: Command) => {
  const address = parseServerAddress(rawAddress);
  const path = '/v1/cluster/join';
  const response = await clientFor(command).request('POST', path, { body: JSON.stringify({ Address: address }), contentType: 'application/json' });
  const body = response.json();
  await output(command, body, () => {
    const joined = readServer(Fields.of(body, path));
    return `Success! ${joined.id} (${joined.address}) joined the cluster as a ${joined.voter ? 'voter' : 'non-voter'}\n`;
  });
});

export const runClusterLeave = handleErrors(async (id: string, _options: unknown, command: Command) => {
  if (id.trim() === '') throw new UsageError('the server ID is empty');
  const response = await clientFor(command).delete(`/v1/cluster/leave/${encodePathSegments(id)}`);
  await output(command, response.json(), () => `Success! Removed ${id} from the cluster\n`);
});

export const runClusterSnapshot = handleErrors(async (_options: unknown, command: Command) => {
  const path = '/v1/cluster/snapshot';
  const body = (await clientFor(command).request('POST', path)).json();
  await output(command, body, () => {
    const fields = Fields.of(body, path);
    return `Success! Snapshot taken at index ${fields.int('Index')} (term ${fields.int('Term')})\n`;
  });
});

export const runClusterTransferLeader = handleErrors(async (id: string | undefined, _options: unknown, command: Command) => {
  if (id !== undefined && id.trim() === '') throw new UsageError('the server ID is empty');
  const path = '/v1/cluster/transfer-leader';
  const body = (await clientFor(command).request('POST', path, { query: { id } })).json();
  await output(command, body, () => {
    const leader = readAddresses(Fields.of(body, path).object('Leader'));
    return `Success! Leadership transferred to ${leader.id}${leader.address ? ` (${leader.address})` : ''}\n`;
  });
});

async function getJson(client: KonsulClient, path: string): Promise<unknown> {
  return (await client.get(path)).json();
}

async function output(command: Command, body: unknown, table: () => string): Promise<void> {
  const format = command.optsWithGlobals().format as Format;
  await writeStdout(format === 'json' ? `${JSON.stringify(body, null, 2)}\n` : table());
}

/**
 * A server-to-server address for `join`: host:port or [ipv6]:port with a port from 1 to 65535. The
 * server checks it again; this only catches typos before anything is sent.
 */
export function parseServerAddress(text: string): string {
  const trimmed = text.trim();
  const parsed = parseAddress(trimmed);
  // The characters the server's schema allows: an IPv6 address in brackets, else a name or IPv4 address.
  const hostChars = trimmed.startsWith('[') ? /^[0-9A-Fa-f:.]+$/ : /^[A-Za-z0-9_.-]+$/;
  if (parsed === null || parsed.port < 1 || !hostChars.test(parsed.host)) {
    throw new UsageError(`invalid server address "${text}" (expected host:port or [ipv6]:port, the server's RPC address, e.g. 10.0.0.4:8300)`);
  }
  return trimmed;
}

// ---- Reading the server's answers: every field checked, numbers kept as exact decimal text ----

/** Reads the fields of one JSON object of an answer; a missing or mistyped field is a CliError naming it. */
export class Fields {
  readonly #path: string;
  readonly #object: Record<string, unknown>;
  private constructor(path: string, object: Record<string, unknown>) {
    this.#path = path;
    this.#object = object;
  }

  static of(value: unknown, path: string): Fields {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) {
      throw new CliError(`Konsul answered ${path} with something other than a JSON object`);
    }
    return new Fields(path, value as Record<string, unknown>);
  }

  string(name: string): string {
    const value = this.#object[name];
    if (typeof value !== 'string') throw this.#missing(name, 'a string');
    return value;
  }

  boolean(name: string): boolean {
    const value = this.#object[name];
    if (typeof value !== 'boolean') throw this.#missing(name, 'true or false');
    return value;
  }

  /** A number as decimal text; integers beyond 2^53 arrive as digit strings (lossless parsing) and stay exact. */
  int(name: string): string {
    const value = this.#object[name];
    if (typeof value === 'number' && Number.isFinite(value)) return String(value);
    if (typeof value === 'string' && /^-?\d+$/.test(value)) return value;
    throw this.#missing(name, 'a number');
  }

  object(name: string): Fields {
    return Fields.of(this.#object[name], `${this.#path} (${name})`);
  }

  /** A JSON array of objects. */
  array(name: string): Fields[] {
    const value = this.#object[name];
    if (!Array.isArray(value)) throw this.#missing(name, 'a JSON array');
    return value.map((item) => Fields.of(item, `${this.#path} (${name})`));
  }

  #missing(name: string, what: string): CliError {
    return new CliError(`Konsul answered ${this.#path} without ${name} as ${what}`);
  }
}

export interface Addresses {
  readonly id: string;
  readonly address: string;
  readonly httpAddress: string;
}

export interface Peer extends Addresses {
  readonly voter: boolean;
  readonly leader: boolean;
}

export interface ClusterStatus {
  readonly self: Addresses;
  readonly role: string;
  readonly leader: Addresses;
  readonly progress: readonly (readonly [string, string])[];
  readonly members: { readonly servers: string; readonly voters: string; readonly nonVoters: string; readonly healthy: string };
  readonly failureTolerance: string;
  readonly healthy: boolean;
}

export interface PeerReplication {
  readonly id: string;
  readonly address: string;
  readonly voter: boolean;
  readonly leader: boolean;
  readonly matchIndex: string;
  readonly replicationLag: string;
  readonly lastContactMs: string;
  readonly state: string;
  readonly healthy: boolean;
}

export interface ClusterStatsView {
  readonly id: string;
  readonly role: string;
  readonly leaderId: string;
  readonly progress: readonly (readonly [string, string])[];
  readonly peers: readonly PeerReplication[];
}

const PROGRESS_FIELDS = ['Term', 'CommitIndex', 'AppliedIndex', 'LastLogIndex', 'LastSnapshotIndex', 'LastContactMs', 'ConfigurationIndex'] as const;

function readProgress(fields: Fields): [string, string][] {
  return PROGRESS_FIELDS.map((name): [string, string] => {
    const value = fields.int(name);
    return name === 'LastContactMs' ? ['LastContact', contactText(value)] : [name, value];
  });
}

function readAddresses(fields: Fields): Addresses {
  return { id: fields.string('ID'), address: fields.string('Address'), httpAddress: fields.string('HTTPAddress') };
}

function readServer(fields: Fields): Peer {
  return { ...readAddresses(fields), voter: fields.boolean('Voter'), leader: fields.boolean('Leader') };
}

export function readStatus(body: unknown, path = '/v1/cluster/status'): ClusterStatus {
  const fields = Fields.of(body, path);
  const members = fields.object('Members');
  return {
    self: readAddresses(fields),
    role: fields.string('Role'),
    leader: readAddresses(fields.object('Leader')),
    progress: readProgress(fields),
    members: { servers: members.int('Servers'), voters: members.int('Voters'), nonVoters: members.int('NonVoters'), healthy: members.int('Healthy') },
    failureTolerance: fields.int('FailureTolerance'),
    healthy: fields.boolean('Healthy'),
  };
}

export function readPeers(body: unknown, path = '/v1/cluster/peers'): Peer[] {
  if (!Array.isArray(body)) throw new CliError(`Konsul answered ${path} with something other than a JSON array`);
  return body.map((item) => readServer(Fields.of(item, path)));
}

export function readStats(body: unknown, path = '/v1/cluster/stats'): ClusterStatsView {
  const fields = Fields.of(body, path);
  return {
    id: fields.string('ID'),
    role: fields.string('Role'),
    leaderId: fields.string('LeaderID'),
    progress: readProgress(fields),
    peers: fields.array('Peers').map((peer) => {
      return {
        id: peer.string('ID'),
        address: peer.string('Address'),
        voter: peer.boolean('Voter'),
        leader: peer.boolean('Leader'),
        matchIndex: peer.int('MatchIndex'),
        replicationLag: peer.int('ReplicationLag'),
        lastContactMs: peer.int('LastContactMs'),
        state: peer.string('State'),
        healthy: peer.boolean('Healthy'),
      };
    }),
  };
}

// ---- Tables ----

/** Milliseconds for people: "12.5ms", "never" for -1 (never heard from / unknown). */
function contactText(ms: string): string {
  return ms.startsWith('-') ? 'never' : `${ms}ms`;
}

/** An index that may be unknown (-1). */
function indexText(value: string): string {
  return value.startsWith('-') ? '-' : value;
}

export function formatStatus(s: ClusterStatus): string {
  return formatRows([
    ['ID', s.self.id],
    ['Address', s.self.address],
    ['HTTPAddress', s.self.httpAddress],
    ['Role', s.role],
    ['Leader', s.leader.id],
    ['LeaderAddress', s.leader.address],
    ...s.progress,
    ['Servers', s.members.servers],
    ['Voters', s.members.voters],
    ['NonVoters', s.members.nonVoters],
    ['HealthyServers', s.members.healthy],
    ['FailureTolerance', s.failureTolerance],
    ['Healthy', String(s.healthy)],
  ]);
}

export function formatPeers(peers: readonly Peer[]): string {
  return formatTable(
    ['ID', 'Address', 'HTTPAddress', 'Voter', 'Leader'],
    peers.map((p) => [p.id, p.address, p.httpAddress, String(p.voter), String(p.leader)]),
  );
}

export function formatStats(s: ClusterStatsView): string {
  const summary = formatRows([['ID', s.id], ['Role', s.role], ['Leader', s.leaderId], ...s.progress]);
  const peers = formatTable(
    ['Peer', 'Address', 'Voter', 'Leader', 'MatchIndex', 'ReplicationLag', 'LastContact', 'State', 'Healthy'],
    s.peers.map((p) => [
      p.id, p.address, String(p.voter), String(p.leader), indexText(p.matchIndex), indexText(p.replicationLag), contactText(p.lastContactMs), p.state, String(p.healthy),
    ]),
  );
  return `${summary}\n${peers}`;
}

/**
 * Columns padded to their widest cell plus two spaces, a header line first; the last column is not
 * padded (no trailing spaces). Empty cells are "-" and whitespace inside a cell becomes "_", so every
 * line has exactly one field per column.
 */
export function formatTable(headers: readonly string[], rows: readonly (readonly string[])[]): string {
  const cells = [headers, ...rows].map((row) => row.map((cell) => (cell.trim() === '' ? '-' : cell.trim().replace(/\s+/g, '_'))));
  const widths = headers.map((_, column) => Math.max(...cells.map((row) => row[column]?.length ?? 0)) + 2);
  return cells.map((row) => row.map((cell, column) => (column === row.length - 1 ? cell : cell.padEnd(widths[column]!))).join('') + '\n').join('');
}
