// How a node and its serfHealth check look in the catalog, shared by everyone who registers one: the
// leader registering servers (server/server-registration.ts) and agents (server/agent-rpc.ts), and
// the agent core registering its own node. Consul's texts (agent/structs: SerfCheckName,
// SerfCheckAliveOutput, SerfCheckFailedOutput).
import type { CatalogCheckSpec, CatalogNodeSpec } from '../../fsm/state/catalog-commands.ts';
import { SERF_CHECK_ID } from '../../fsm/state/catalog.ts';

export const SERF_CHECK_NAME = 'Serf Health Status';
export const SERF_ALIVE_OUTPUT = 'Agent alive and reachable';
export const SERF_FAILED_OUTPUT = 'Agent not live or unreachable';

/** A node as servers and agents register it: every tagged address is the node's address. */
export function catalogNodeSpec(name: string, address: string, datacenter: string): CatalogNodeSpec {
  return {
    Node: name,
    ID: '',
    Address: address,
    Datacenter: datacenter,
    TaggedAddresses: { lan: address, lan_ipv4: address, wan: address, wan_ipv4: address },
    Meta: { 'consul-network-segment': '' },
  };
}

/** The serfHealth node check the leader keeps for every live (passing) or silent (critical) member. */
export function serfCheck(status: 'passing' | 'critical'): CatalogCheckSpec {
  return {
    CheckID: SERF_CHECK_ID,
    Name: SERF_CHECK_NAME,
    Status: status,
    Notes: '',
    Output: status === 'passing' ? SERF_ALIVE_OUTPUT : SERF_FAILED_OUTPUT,
    ServiceID: '',
    Type: '',
    Interval: '',
    Timeout: '',
    Definition: {},
  };
}
