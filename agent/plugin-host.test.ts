// What a plugin sees of a client agent: KV and catalog read through the agent's cache, watches as
// blocking gets on cached entries. The cache's upstream is a real server, in process (fastify's
// inject), reached the way agent/main.ts reaches the servers: stale reads, blocking refreshes.
import Fastify from 'fastify';
import t from 'tap';
import { dnsPlugin } from '../dns/plugin.ts';
import { startInProcessServer } from '../test/kit/in-process-server.ts';
import { waitFor } from '../test/kit/wait.ts';
import { AgentCache, type CachedResult } from './cache.ts';
import { agentPluginHosts } from './plugin-host.ts';

t.test('kv views and watches through the cache; the catalog view is the DNS view, kept warm once taken', async (t) => {
  const server = await startInProcessServer({ t });
  const cache = new AgentCache({
    maxEntries: 100,
    maxBytes: 1 << 20,
    entryTtlMs: 60_000,
    fetch: async (key, minIndex): Promise<CachedResult> => {
      const sep = key.includes('?') ? '&' : '?';
      const answer = await server.get(minIndex > 0 ? `${key}${sep}stale&index=${minIndex}&wait=2s` : `${key}${sep}stale`);
      const headers = Object.fromEntries(Object.entries(answer.headers).map(([k, v]) => [k, String(v)]));
      return { status: answer.status, headers, body: answer.raw, index: Number(answer.headers['x-consul-index'] ?? 0) };
    },
  });
  const app = Fastify();
  const hosts = agentPluginHosts({ nodeName: 'a1', datacenter: 'dc1', logLevel: 'silent', cache, app, cacheEntryTtlMs: 60_000 });
  t.teardown(async () => {
    hosts.stop();
    cache.stop();
    await app.close();
  });
  const host = hosts.hostFor(dnsPlugin);
  t.equal(host.process, 'agent');

  t.equal((await server.put('/v1/kv/config/a?flags=42', 'v1')).text, 'true');
  const a = await host.kv.get('config/a');
  t.equal(Buffer.from(a!.Value).toString(), 'v1');
  t.equal(a!.Flags, 42n);
  t.equal(await host.kv.get('config/missing'), undefined);

  let wakes = 0;
  const cancel = host.watches.kv('config/', () => wakes++);
  // The watch's first get loads the listing; the next change wakes it.
  await waitFor(() => cache.has('/v1/kv/config/?recurse'));
  t.equal((await server.put('/v1/kv/config/b', 'v2')).text, 'true');
  await waitFor(() => wakes > 0, { timeoutMs: 10_000 });
  t.same((await host.kv.list('config/')).map((e) => e.Key), ['config/a', 'config/b']);
  cancel();

  t.equal(host.catalog.datacenter, 'dc1');
  // Taking the view started keeping the service and node lists cached.
  await waitFor(() => cache.has('/v1/catalog/services') && cache.has('/v1/catalog/nodes'));
});
