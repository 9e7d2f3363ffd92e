// What `konsulctl status` does; its arguments, options and help are in status.ts, which imports
// this module only when the command runs.
import type { Command } from 'commander';
import { clientFor, handleErrors, writeStdout } from '../command-support.ts';
import { CliError } from '../http-client.ts';

export const runStatus = handleErrors(async (_options: unknown, command: Command) => {
  const client = clientFor(command);
  const [leaderResponse, peersResponse, selfResponse] = await Promise.all([
    client.get('/v1/status/leader'),
    client.get('/v1/status/peers'),
    client.get('/v1/agent/self'),
  ]);
  const leader = leaderResponse.json();
  const peers = peersResponse.json();
  const self = selfResponse.json();
  if (typeof leader !== 'string') throw new CliError('Konsul answered /v1/status/leader with something other than a JSON string');
  if (!Array.isArray(peers) || !peers.every((p): p is string => typeof p === 'string')) {
    throw new CliError('Konsul answered /v1/status/peers with something other than a JSON array of strings');
  }
  const { config, raftStats } = readAgentSelf(self);
  const rows: [string, string][] = [
    ['Node', config.NodeName],
    ['Datacenter', config.Datacenter],
    ['Leader', leader],
    ['Peers', peers.join(',')],
    ...Object.keys(raftStats).sort().map((name): [string, string] => [`raft.${name}`, raftStats[name]!]),
  ];
  await writeStdout(formatRows(rows));
});

interface AgentSelfSummary {
  config: { NodeName: string; Datacenter: string };
  raftStats: Record<string, string>;
}

function readAgentSelf(self: unknown): AgentSelfSummary {
  const body = (typeof self === 'object' && self !== null ? self : {}) as { Config?: Record<string, unknown>; Stats?: Record<string, unknown> };
  const config = body.Config ?? {};
  if (typeof config.NodeName !== 'string' || typeof config.Datacenter !== 'string') {
    throw new CliError('Konsul answered /v1/agent/self without Config.NodeName and Config.Datacenter');
  }
  const raft = body.Stats?.raft;
  const raftStats: Record<string, string> = {};
  if (typeof raft === 'object' && raft !== null) {
    for (const [name, value] of Object.entries(raft)) raftStats[name] = String(value);
  }
  return { config: { NodeName: config.NodeName, Datacenter: config.Datacenter }, raftStats };
}

/** Aligned "Label  value" lines; whitespace inside a value becomes "_" so each line is two fields. */
export function formatRows(rows: readonly (readonly [string, string])[]): string {
  const width = Math.max(0, ...rows.map(([label]) => label.length)) + 2;
  return rows.map(([label, value]) => `${label.padEnd(width)}${value.trim() === '' ? '-' : value.trim().replace(/\s+/g, '_')}\n`).join('');
}
