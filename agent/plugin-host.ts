// What a plugin sees of a client agent (plugins/plugin.ts PluginHost): the agent has no replica,
// so its views read through the agent's cache (agent/cache.ts), which keeps each entry current with
// background blocking queries to the servers (stale reads, no leader needed). The catalog view is
// the DNS view (agent/dns-view.ts); once a plugin takes it, its lists are kept cached. Watches are blocking
// gets on cached entries: the KV prefix's recursive listing, and the catalog's service and node
// lists (a change of a check's status alone is not seen by an agent-side catalog watch).
import type { FastifyInstance } from 'fastify';
import type { KvEntry } from '../fsm/state/kv.ts';
import type { LogLevel } from '../lib/config-values.ts';
import { parseJsonLossless, uint64Field } from '../lib/lossless-json.ts';
import { periodicTask } from './core/periodic-task.ts';
import type { Service } from '../lib/service.ts';
import { coalesced, processLogger } from '../plugins/host-support.ts';
import type { AnyPlugin, CancelWatch, PluginHost } from '../plugins/plugin.ts';
import type { AgentCache } from './cache.ts';
import { agentDnsView } from './dns-view.ts';

export interface AgentPluginHostOptions {
  readonly nodeName: string;
  readonly datacenter: string;
  readonly logLevel: LogLevel;
  readonly cache: AgentCache;
  readonly app: FastifyInstance;
  /** Cache entries nobody asked for this long are dropped: the catalog lists are touched well within it. */
  readonly cacheEntryTtlMs: number;
}

/** The hosts, and the Service that ends their background work (keep-warm, watches). */
export interface AgentPluginHosts extends Service {
  hostFor(plugin: AnyPlugin): PluginHost;
}

interface KvJson {
  Key: string;
  CreateIndex: number;
  ModifyIndex: number;
  LockIndex: number;
  Flags: unknown;
  Value: string | null;
  Session?: string;
}

const WATCH_WAIT_MS = 300_000;
const WATCH_RETRY_MS = 1000;

function kvPath(key: string): string {
  return `/v1/kv/${key.split('/').map(encodeURIComponent).join('/')}`;
}

function kvEntries(body: Buffer): KvEntry[] {
  return (parseJsonLossless(body.toString('utf8')) as KvJson[]).map((e) => ({
    Key: e.Key,
    CreateIndex: e.CreateIndex,
    ModifyIndex: e.ModifyIndex,
    LockIndex: e.LockIndex,
    Flags: BigInt(uint64Field(e.Flags, 'Flags')),
    Value: e.Value === null ? new Uint8Array() : Buffer.from(e.Value, 'base64'),
    ...(e.Session !== undefined ? { Session: e.Session } : {}),
  }));
}

export function agentPluginHosts(options: AgentPluginHostOptions): AgentPluginHosts {
  const { cache, app } = options;
  const log = processLogger(options.logLevel);
  const view = agentDnsView(cache, options.datacenter);
  // The service and node lists stay cached while a plugin reads the catalog (see agent/dns-view.ts).
  const warm = periodicTask('plugin catalog keep-warm', Math.max(1000, Math.min(60_000, Math.floor(options.cacheEntryTtlMs / 3))), () => view.touch(), () => undefined);
  const watches = new Set<AbortController>();
  let stopped = false;

  /** Starts keeping the lists cached, the first time a plugin takes the catalog view. */
  const keepWarm = (): void => {
    if (warm.running || stopped) return;
    warm.start();
    void view.touch().catch(() => undefined);
  };

  /** Calls `wake` whenever the cached answer at one of `keys` gets a new index. */
  const watchKeys = (keys: readonly string[], onChange: () => void): CancelWatch => {
    const abort = new AbortController();
    watches.add(abort);
    const wake = coalesced(onChange, log);
    for (const key of keys) {
      void (async () => {
        let index = 0;
        while (!abort.signal.aborted) {
          try {
            const answer = await cache.get(key, { minIndex: index, waitMs: WATCH_WAIT_MS, signal: abort.signal });
            if (index !== 0 && answer.result.index !== index) wake();
            index = answer.result.index;
          } catch {
            if (abort.signal.aborted) break;
            await new Promise((resolve) => setTimeout(resolve, WATCH_RETRY_MS).unref());
          }
        }
      })();
    }
    return () => {
      abort.abort();
      watches.delete(abort);
    };
  };

  return {
    name: 'plugin hosts',
    hostFor: () => ({
      process: 'agent',
      nodeName: options.nodeName,
      datacenter: options.datacenter,
      log,
      routes: (register) => void app.register(register),
      get catalog() {
        keepWarm();
        return view;
      },
      kv: {
        get: async (key) => {
          const answer = await cache.get(kvPath(key));
          return answer.result.status === 200 ? kvEntries(answer.result.body)[0] : undefined;
        },
        list: async (prefix) => {
          const answer = await cache.get(`${kvPath(prefix)}?recurse`);
          return answer.result.status === 200 ? kvEntries(answer.result.body) : [];
        },
      },
      watches: {
        kv: (prefix, onChange) => watchKeys([`${kvPath(prefix)}?recurse`], onChange),
        catalog: (onChange) => watchKeys(['/v1/catalog/services', '/v1/catalog/nodes'], onChange),
      },
    }),
    stop: () => {
      stopped = true;
      warm.stop();
      for (const abort of watches) abort.abort();
      watches.clear();
    },
  };
}
