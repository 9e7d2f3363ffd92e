// What a plugin sees of a server (plugins/plugin.ts PluginHost): its replica of the catalog and KV
// store, read in place (stale reads: no Raft round trip), the FSM's watch registry, and routes on
// the server's HTTP API.
import type { FastifyInstance } from 'fastify';
import { catalogTableView } from '../dns/catalog-view.ts';
import type { KonsulFsm } from '../fsm/konsul-fsm.ts';
import type { LogLevel } from '../lib/config-values.ts';
import { coalesced, processLogger } from '../plugins/host-support.ts';
import type { AnyPlugin, PluginHost } from '../plugins/plugin.ts';

export interface ServerPluginHostOptions {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly logLevel: LogLevel;
  readonly fsm: KonsulFsm;
  readonly app: FastifyInstance;
}

export function serverPluginHosts(options: ServerPluginHostOptions): (plugin: AnyPlugin) => PluginHost {
  const { fsm, app } = options;
  const log = processLogger(options.logLevel);
  // One view for every plugin: it caches instance lists per service index.
  const catalog = catalogTableView(fsm.catalog, options.datacenter);
  return () => ({
    process: 'server',
    nodeName: options.nodeName,
    datacenter: options.datacenter,
    log,
    routes: (register) => void app.register(register),
    catalog,
    kv: {
      get: async (key) => fsm.kv.get(key),
      list: async (prefix) => fsm.kv.list(prefix),
    },
    watches: {
      kv: (prefix, onChange) => fsm.watches.watchPrefix(prefix, coalesced(onChange, log)),
      catalog: (onChange) => fsm.watches.watchTable('catalog', coalesced(onChange, log)),
    },
  });
}
