// The DNS flags shared by `konsul server` and `konsul agent`: add them to a commander command with
// addDnsOptions, and read them back with dnsOptionValues (undefined for a flag not given, so that
// config-file values keep precedence over defaults only).
import { InvalidArgumentError, type Command } from 'commander';
import { normaliseDomain, normaliseRecursor, parseDnsAddr } from './config.ts';

function checked<T>(parse: (text: string) => T): (text: string) => T {
  return (text) => {
    try {
      return parse(text);
    } catch (err) {
      throw new InvalidArgumentError((err as Error).message);
    }
  };
}

/** Validated now, converted later: commander does not keep a null that a parser returns ("off"). */
function dnsAddrText(text: string): string {
  parseDnsAddr(text, '--dns-addr');
  return text;
}

export function addDnsOptions(command: Command, defaultsText = '127.0.0.1:8600; with --dev an ephemeral port'): Command {
  return command
    .option('--dns-addr <host:port|off>', `address of the DNS interface, UDP and TCP (default: ${defaultsText}; "off" disables it)`, checked(dnsAddrText))
    .option('--domain <domain>', 'the DNS domain answered (default: consul)', checked((v) => normaliseDomain(v, '--domain')))
    .option(
      '--recursor <host[:port]>',
      'upstream DNS server for names outside the domain (repeatable; default: none, such names are refused)',
      (value: string, previous: string[] | undefined) => [...(previous ?? []), checked(normaliseRecursor)(value)],
    );
}

export interface DnsOptionValues {
  /** null = --dns-addr off. */
  readonly dnsAddr: { host: string; port: number } | null | undefined;
  readonly dnsDomain: string | undefined;
  readonly dnsRecursors: string[] | undefined;
}

export function dnsOptionValues(opts: Record<string, unknown>): DnsOptionValues {
  const recursors = opts.recursor as string[] | undefined;
  return {
    dnsAddr: typeof opts.dnsAddr === 'string' ? parseDnsAddr(opts.dnsAddr, '--dns-addr') : undefined,
    dnsDomain: opts.domain as string | undefined,
    dnsRecursors: recursors !== undefined && recursors.length > 0 ? recursors : undefined,
  };
}
