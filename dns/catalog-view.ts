// What the DNS interface reads: a small, synchronous view of the catalog. A server implements it
// over its FSM's CatalogTable (below); an agent implements it over its local cache. Reads never
// leave the process: a DNS query costs no Raft or RPC round trip (Consul's allow_stale, which is
// its default, likewise answers from whatever the serving node knows).
//
// Contract for implementers:
// - Names are compared case-insensitively (Consul's catalog is).
// - `serviceInstances` lists every instance of the service, healthy or not, with the status of
//   every check that applies to it (node-level checks and the instance's own). Filtering by health
//   and tag, shuffling and limits are the resolver's job (dns/resolve.ts), so views stay dumb.
// - Calls must be cheap (a map lookup and a copy at most): they run once per query.
import type { CatalogTable } from '../fsm/state/catalog.ts';

export interface DnsServiceInstance {
  /** The node's name as registered. */
  readonly node: string;
  /** The node's address: an IP or a host name. */
  readonly nodeAddress: string;
  /** The instance's own address ('' when unset: the node's address is used). */
  readonly serviceAddress: string;
  readonly port: number;
  readonly tags: readonly string[];
  /** SRV weights for a passing and for a warning instance (Consul's Weights, default 1 and 1). */
  readonly weights: { readonly passing: number; readonly warning: number };
  /** 'passing' | 'warning' | 'critical' (anything else counts as not passing). */
  readonly checkStatuses: readonly string[];
}

export interface DnsNode {
  readonly name: string;
  readonly address: string;
  readonly meta: Readonly<Record<string, string>>;
}

export interface DnsCatalogView {
  /** The datacenter this view describes (the only one answered; others are NXDOMAIN). */
  readonly datacenter: string;
  serviceInstances(service: string): readonly DnsServiceInstance[];
  node(name: string): DnsNode | undefined;
}

/** A server's view: its own replica of the catalog, read in place. */
export function catalogTableView(catalog: CatalogTable, datacenter: string): DnsCatalogView {
  return {
    datacenter,
    serviceInstances: (service) =>
      catalog.checkServiceNodes(service).map(({ node, service: instance, checks }) => ({
        node: node.Node,
        nodeAddress: node.Address,
        serviceAddress: instance.Address,
        port: instance.Port,
        tags: instance.Tags,
        weights: { passing: instance.Weights.Passing, warning: instance.Weights.Warning },
        checkStatuses: checks.map((c) => c.Status),
      })),
    node: (name) => {
      const node = catalog.getNode(name);
      return node === undefined ? undefined : { name: node.Node, address: node.Address, meta: node.Meta };
    },
  };
}
