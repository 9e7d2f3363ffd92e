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
// - A view that does not hold a name yet but is fetching it (an agent's cache) throws
//   ViewLoadingError: the server waits briefly for that load and asks again, so the first query
//   for a name is answered rather than failed.
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

/** Thrown by a view for a name it is loading: `loaded` settles true once it can be asked again, false if the load failed (never rejects). */
export class ViewLoadingError extends Error {
  readonly loaded: Promise<boolean>;
  constructor(message: string, loaded: Promise<boolean>) {
    super(message);
    this.name = 'ViewLoadingError';
    this.loaded = loaded;
  }
}

/** True when `err` is a ViewLoadingError whose load succeeds within `withinMs`: the query is worth resolving again. */
export async function viewLoadedWithin(err: unknown, withinMs: number): Promise<boolean> {
  if (!(err instanceof ViewLoadingError) || withinMs <= 0) return false;
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), withinMs);
  });
  try {
    return await Promise.race([err.loaded, timedOut]);
  } finally {
    clearTimeout(timer);
  }
}

const MAX_CACHED_SERVICES = 4096;

/** A server's view: its own replica of the catalog, read in place (instance lists cached per service index). */
export function catalogTableView(catalog: CatalogTable, datacenter: string): DnsCatalogView {
  // Building the list costs a node lookup and a sort of checks per instance (8 ms for 3,000
  // instances): it is kept per service until the service's index moves, which every change to an
  // instance, its checks (node-level ones included) or its node does. The resolver never mutates it.
  const cache = new Map<string, { readonly index: number; readonly instances: readonly DnsServiceInstance[] }>();
  return {
    datacenter,
    serviceInstances: (service) => {
      const key = service.toLowerCase();
      const index = catalog.serviceIndex(service);
      const cached = cache.get(key);
      if (cached !== undefined && cached.index === index) return cached.instances;
      const instances: readonly DnsServiceInstance[] = catalog.checkServiceNodes(service).map(({ node, service: instance, checks }) => ({
        node: node.Node,
        nodeAddress: node.Address,
        serviceAddress: instance.Address,
        port: instance.Port,
        tags: instance.Tags,
        weights: { passing: instance.Weights.Passing, warning: instance.Weights.Warning },
        checkStatuses: checks.map((c) => c.Status),
      }));
      // Only services that exist are kept (a flood of made-up names costs nothing), and a bounded number.
      if (instances.length === 0) cache.delete(key);
      else {
        if (cache.size >= MAX_CACHED_SERVICES) cache.clear();
        cache.set(key, { index, instances });
      }
      return instances;
    },
    node: (name) => {
      const node = catalog.getNode(name);
      return node === undefined ? undefined : { name: node.Node, address: node.Address, meta: node.Meta };
    },
  };
}
