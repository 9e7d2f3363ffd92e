// The DNS plugin's flags (`--dns-addr`, `--domain`, `--recursor`), generated from its settings
// table (dns/config.ts DNS_PLUGIN_SETTINGS) like every other flag: `konsul server` and
// `konsul agent` add them through their own tables; these two helpers serve code that wants only
// the DNS flags on a command of its own.
import type { Command } from 'commander';
import { addSettingFlags, flagLayer } from '../plugins/settings.ts';
import { DNS_PLUGIN_SETTINGS, type DnsPluginConfig } from './config.ts';

export function addDnsOptions(command: Command): Command {
  const { dnsAddr, dnsDomain, dnsRecursors } = DNS_PLUGIN_SETTINGS;
  return addSettingFlags(command, { dnsAddr, dnsDomain, dnsRecursors });
}

/** The flags given (undefined for a flag not given, so that config-file values keep precedence). */
export function dnsOptionValues(opts: Record<string, unknown>): Pick<Partial<DnsPluginConfig>, 'dnsAddr' | 'dnsDomain' | 'dnsRecursors'> {
  const layer = flagLayer(DNS_PLUGIN_SETTINGS, opts);
  return { dnsAddr: layer.dnsAddr, dnsDomain: layer.dnsDomain, dnsRecursors: layer.dnsRecursors };
}
