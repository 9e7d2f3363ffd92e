// `konsul operator raft recover`: offline outage recovery of a stopped server's data directory
// (server/outage-recovery.ts, docs/adr/0018-outage-recovery.md, docs/disaster-recovery.md).
// Exit status: 0 recovered (or nothing to change), 1 refused or failed, 2 bad command line or peers file.
import type { Command } from 'commander';
import type { ConfState } from '../raft/core/types.ts';
import { ConfigError, DEFAULTS, readConfigFile } from '../server/config.ts';
import { PeersFileError, readPeersFile, recoverCluster, RecoveryRefusedError, type RecoveryOutcome } from '../server/outage-recovery.ts';

export function addOperatorCommand(program: Command): void {
  const operator = program.command('operator').description('operator actions on a server\'s own data');
  const raft = operator.command('raft').description('the Raft storage of a stopped server');
  raft
    .command('recover')
    .description('after losing the majority of the servers: make a STOPPED server\'s Raft membership the one in a peers file, keeping every entry of its log')
    .option('--peers <file>', 'JSON array of the new membership: [{"id": "<node name>", "address": "<host>:<rpc port>", "non_voter": false}]')
    .option('--data-dir <dir>', 'the stopped server\'s data directory (default: the config\'s data_dir, else ./data)')
    .option('--node <name>', 'the server\'s node name (default: the config\'s node_name, else the host name, as `konsul server`)')
    .option('--config <file>', 'the server\'s JSON config file, for data_dir and node_name')
    .option('--dry-run', 'check everything and show what would change, without writing')
    .addHelpText('after', `
Run it on the survivor while its server is stopped, then start the server as before. The server
named by --node must be a voter in the peers file. Every entry of the log, committed or not, is
kept. Running it again with the same file changes nothing. See docs/disaster-recovery.md.
Exit status: 0 recovered (or already recovered), 1 refused or failed (nothing changed unless said),
2 invalid command line or peers file.`)
    .action(async (opts: { peers?: string; dataDir?: string; node?: string; config?: string; dryRun?: boolean }) => {
      const fail = (code: number, message: string): never => {
        process.stderr.write(`konsul: ${message}\n`);
        process.exit(code);
      };
      if (opts.peers === undefined) return fail(2, 'operator raft recover: --peers FILE is required (the new membership)');
      const peersFile = opts.peers;
      let dataDir: string;
      let nodeId: string;
      let peers;
      try {
        const fromFile = opts.config !== undefined ? readConfigFile(opts.config) : {};
        dataDir = opts.dataDir ?? fromFile.dataDir ?? DEFAULTS.dataDir;
        nodeId = opts.node ?? fromFile.nodeName ?? DEFAULTS.nodeName;
        peers = readPeersFile(peersFile);
      } catch (err) {
        if (err instanceof ConfigError || err instanceof PeersFileError) return fail(2, err.message);
        throw err;
      }
      let outcome: RecoveryOutcome;
      try {
        outcome = await recoverCluster({ dataDir, nodeId, peers, dryRun: opts.dryRun === true });
      } catch (err) {
        if (err instanceof RecoveryRefusedError) return fail(1, `refusing to recover: ${err.message}`);
        return fail(1, `recovery failed: ${(err as Error).message}`);
      }
      process.stdout.write(report(dataDir, nodeId, outcome));
    });
}

function report(dataDir: string, nodeId: string, o: RecoveryOutcome): string {
  const f = o.found;
  const lines = [
    `Data directory ${dataDir}, server "${nodeId}":`,
    `  log: ${f.snapshot ? `snapshot at index ${f.snapshot.index} (term ${f.snapshot.term}), ` : ''}last entry ${f.lastIndex} (term ${f.lastTerm}), committed up to ${f.hardState.commit}, current term ${f.hardState.term}`,
    `  membership in force: ${conf(f.membership)}`,
    `  new membership:      ${conf(o.membership)}`,
    ...o.warnings.map((w) => `  warning: ${w}`),
  ];
  const kept = `${o.replayedEntries} log entr${o.replayedEntries === 1 ? 'y' : 'ies'} after the snapshot (${o.uncommittedEntries} not known to be committed here)`;
  const at = `index ${o.snapshot.index} (term ${o.snapshot.term})`;
  switch (o.result) {
    case 'dryRun':
      lines.push(`Dry run: would write a snapshot at ${at} holding ${kept} and the new membership. Nothing was changed.`);
      break;
    case 'unchanged':
      lines.push(`Nothing to do: the storage already holds this membership in its snapshot at ${at}. Start the server.`);
      break;
    case 'recovered':
      lines.push(`Recovered: wrote a snapshot at ${at} holding ${kept} and the new membership. Start the server.`);
      break;
  }
  return `${lines.join('\n')}\n`;
}

function conf(c: ConfState): string {
  return `voters ${c.voters.join(', ') || '-'}; non-voters ${c.learners.join(', ') || '-'}`;
}
