// The DNS interface on an agent answers from the agent's cache (dns/catalog-view.ts's contract:
// synchronous, cheap). A service's instances are the cached `/v1/health/service/<name>` answer,
// a node the cached `/v1/catalog/node/<name>`; both stay current through the cache's background
// blocking queries. The service and node lists are kept cached too, so that a name the catalog
// does not have answers NXDOMAIN at once. A name the catalog has but the cache has not loaded yet
// (the first query for it, or one not asked for within the cache TTL) starts loading it and throws
// ViewLoadingError: the DNS server waits for that load (up to about a second) and answers from
// memory; only a load slower than that, or failing, makes the query SERVFAIL (resolvers retry,
// and do not cache it as a negative answer).
import { ViewLoadingError, type DnsCatalogView, type DnsNode, type DnsServiceInstance } from '../dns/catalog-view.ts';
import type { AgentCache } from './cache.ts';

const SERVICES_KEY = '/v1/catalog/services';
const NODES_KEY = '/v1/catalog/nodes';

interface HealthJson {
  Node: { Node: string; Address: string };
  Service: { Address: string; Port: number; Tags: string[] | null; Weights?: { Passing: number; Warning: number } };
  Checks: { Status: string }[];
}

interface NodeJson {
  Node: { Node: string; Address: string; Meta: Record<string, string> | null } | null;
}

export class NotCachedYetError extends ViewLoadingError {
  constructor(what: string, loaded: Promise<boolean>) {
    super(`${what} is not in the agent's cache yet; loading it`, loaded);
    this.name = 'NotCachedYetError';
  }
}

export interface AgentDnsView extends DnsCatalogView {
  /** Keeps the service and node lists cached (call every so often, well within the cache TTL). */
  touch(): Promise<void>;
}

/** Both loads done: the list's (when it was loading) and the entry's. */
function loading(list: boolean | Promise<boolean>, entry: Promise<boolean>): Promise<boolean> {
  return Promise.all([list, entry]).then(([a, b]) => a !== false && b);
}

export function agentDnsView(cache: AgentCache, datacenter: string): AgentDnsView {
  // Parsed answers, per cached body: a body is parsed once however many queries read it.
  const parsed = new WeakMap<Buffer, unknown>();
  const parse = <T>(body: Buffer): T => {
    let v = parsed.get(body);
    if (v === undefined) {
      v = JSON.parse(body.toString('utf8')) as unknown;
      parsed.set(body, v);
    }
    return v as T;
  };
  /** Starts loading `key` (one fetch however many queries ask); true once it loaded, false if that failed. */
  const load = (key: string): Promise<boolean> =>
    cache.get(key).then(
      () => true,
      () => false,
    );
  /** A promise: the list is not cached (cannot tell yet), and is loading. */
  const listed = (key: string, name: string, names: (body: unknown) => string[]): boolean | Promise<boolean> => {
    const hit = cache.peek(key);
    if (hit === undefined || hit.result.status !== 200) return load(key);
    const folded = name.toLowerCase();
    return names(parse(hit.result.body)).some((n) => n.toLowerCase() === folded);
  };
  return {
    datacenter,
    serviceInstances(service: string): readonly DnsServiceInstance[] {
      const key = `/v1/health/service/${encodeURIComponent(service)}`;
      const hit = cache.peek(key);
      if (hit !== undefined && hit.result.status === 200) {
        return parse<HealthJson[]>(hit.result.body).map((e) => ({
          node: e.Node.Node,
          nodeAddress: e.Node.Address,
          serviceAddress: e.Service.Address,
          port: e.Service.Port,
          tags: e.Service.Tags ?? [],
          weights: { passing: e.Service.Weights?.Passing ?? 1, warning: e.Service.Weights?.Warning ?? 1 },
          checkStatuses: e.Checks.map((c) => c.Status),
        }));
      }
      const known = listed(SERVICES_KEY, service, (body) => Object.keys(body as Record<string, unknown>));
      if (known === false) return [];
      throw new NotCachedYetError(`service ${service}`, loading(known, load(key)));
    },
    node(name: string): DnsNode | undefined {
      const key = `/v1/catalog/node/${encodeURIComponent(name)}`;
      const hit = cache.peek(key);
      if (hit !== undefined && (hit.result.status === 200 || hit.result.status === 404)) {
        const node = hit.result.status === 200 ? parse<NodeJson | null>(hit.result.body)?.Node : null;
        return node ? { name: node.Node, address: node.Address, meta: node.Meta ?? {} } : undefined;
      }
      const known = listed(NODES_KEY, name, (body) => (body as { Node: string }[]).map((n) => n.Node));
      if (known === false) return undefined;
      throw new NotCachedYetError(`node ${name}`, loading(known, load(key)));
    },
    async touch(): Promise<void> {
      await Promise.all([cache.get(SERVICES_KEY), cache.get(NODES_KEY)]);
    },
  };
}
