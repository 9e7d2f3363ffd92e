// `konsulctl status`: the cluster's leader and peers, and the answering server's node and Raft state.
import type { Command } from 'commander';
import { lazyAction } from './lazy-action.ts';

export function registerStatusCommand(program: Command): void {
  program
    .command('status')
    .description('show the leader, the peers, and the answering server\'s node and Raft state')
    .addHelpText('after', `
Output: one "Label<spaces>value" line per field, labels padded to a common width; values never
contain spaces ("-" when empty), so \`awk '$1 == "Leader" { print $2 }'\` works:
  Node               the answering server's node name          (GET /v1/agent/self Config.NodeName)
  Datacenter         its datacenter                            (Config.Datacenter)
  Leader             the leader's server address, "-" if none  (GET /v1/status/leader)
  Peers              the voters' server addresses, comma-separated (GET /v1/status/peers)
  raft.<stat>        each of the server's Raft stats, sorted by name (Stats.raft: state, term,
                     commit_index, applied_index, last_log_index, num_peers, ...)
`)
    .action(lazyAction(() => import('./status-actions.ts'), (m) => m.runStatus));
}
