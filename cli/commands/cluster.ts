// `konsulctl cluster ...`: the Raft cluster as Konsul's /v1/cluster API reports it (status, leader,
// peers, replication stats) and the operator's actions on it (join, leave, snapshot, transfer-leader).
// Tables by default, the server's JSON with --format json.
import { Option, type Command } from 'commander';
import { lazyAction } from './lazy-action.ts';

export function registerClusterCommands(program: Command): void {
  const cluster = program
    .command('cluster')
    .description('show the Raft cluster (status, leader, peers, replication) and join, remove or snapshot servers')
    .addOption(new Option('--format <format>', 'output format: aligned tables, or the server\'s answer as indented JSON')
      .choices(['table', 'json'])
      .default('table'))
    .addHelpText('after', `
--format may appear anywhere after "cluster". Tables put one value per column or per "Label<spaces>value"
line; a value is never empty ("-" instead) and never contains spaces, so awk can read them. Indexes
that are unknown are "-", a server never heard from has LastContact "never".
Exit status: 0 success, 1 the operation failed (unreachable server, error answer, no leader),
2 invalid command line.`);

  cluster.command('status')
    .description('this server, the leader, Raft progress, and the members\' health (GET /v1/cluster/status)')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterStatus));

  cluster.command('leader')
    .description('the current leader: ID, server (RPC) address and HTTP address (GET /v1/cluster/leader)')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterLeader));

  cluster.command('peers')
    .description('the servers of the Raft configuration, voters first (GET /v1/cluster/peers)')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterPeers));

  cluster.command('stats')
    .description('Raft progress and, on the leader, each peer\'s replication (GET /v1/cluster/stats)')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterStats));

  cluster.command('join')
    .description('add the server answering at <address> to the cluster (a non-voter until it has caught up)')
    .argument('<address>', 'the new server\'s server-to-server (RPC) address, host:port or [ipv6]:port')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterJoin));

  cluster.command('leave')
    .description('remove the server <id> from the Raft configuration')
    .argument('<id>', 'the server\'s ID (its node name), as `konsulctl cluster peers` shows it')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterLeave));

  cluster.command('snapshot')
    .description('take a Raft snapshot on the answering server now, compacting its log (POST /v1/cluster/snapshot)')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterSnapshot));

  cluster.command('transfer-leader')
    .description('move the leadership to [id], or to the most up-to-date voter')
    .argument('[id]', 'the ID of the voter that should lead')
    .action(lazyAction(() => import('./cluster-actions.ts'), (m) => m.runClusterTransferLeader));
}
