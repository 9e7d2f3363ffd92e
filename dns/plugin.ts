// The DNS interface as a plugin (plugins/plugin.ts): on by default in `konsul server` and
// `konsul agent`, configured with Consul's keys (dns_addr, domain, recursors, dns_config), and
// answering from whatever catalog view its host has: a server's replica of the catalog, an agent's
// cache (docs/adr/0012-dns-interface.md, docs/adr/0022-plugins.md).
import type { Plugin, PluginHost, RunningPlugin } from '../plugins/plugin.ts';
import { DNS_PLUGIN_SETTINGS, dnsSettings, type DnsPluginConfig } from './config.ts';
import { startDnsServer, type RunningDnsServer } from './server.ts';

export const dnsPlugin: Plugin<DnsPluginConfig> = {
  name: 'dns',
  description: "Consul's DNS interface (UDP and TCP): <service>.service.<domain>, <node>.node.<domain>, SRV; other names go to the recursors",
  enabledByDefault: true,
  settings: DNS_PLUGIN_SETTINGS,
  async start(host: PluginHost, config: DnsPluginConfig): Promise<RunningPlugin> {
    const off: RunningPlugin = { listeners: [], stop: async () => undefined };
    if (config.dnsAddr === null) return off;
    let dns: RunningDnsServer;
    try {
      dns = await startDnsServer({
        listen: config.dnsAddr,
        settings: dnsSettings({ domain: config.dnsDomain, recursors: config.dnsRecursors, dnsConfig: config.dnsConfig }),
        view: host.catalog,
        log: (level, message) => {
          // An agent that has not cached a name yet answers SERVFAIL once (the next query is answered): not a warning.
          host.log(/not in the agent's cache yet/.test(message) ? 'debug' : level, message);
        },
      });
    } catch (err) {
      // Several servers or agents on one host (the README's three-server example, test clusters)
      // cannot all have the default port: one that was not told an address serves without DNS, and
      // says so. An address given by flag or config file that cannot be bound is fatal, as in Consul.
      // (The default is recognised by identity: the settings table keeps the one default object.)
      if (config.dnsAddr !== DNS_PLUGIN_SETTINGS.dnsAddr.default || (err as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw err;
      host.log('warn', `${(err as Error).message}: the DNS interface is off (choose an address with --dns-addr or dns_addr)`);
      return off;
    }
    return {
      listeners: [{ name: 'dns', host: dns.address.host, port: dns.address.port, protocols: 'udp+tcp' }],
      stop: () => dns.stop(),
    };
  },
};
