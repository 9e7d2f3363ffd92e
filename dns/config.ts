// DNS settings: Consul's names and defaults (the `domain` and `recursors` keys and the `dns_config`
// object of an agent configuration file), validated the same way for `konsul server` and
// `konsul agent`. docs/adr/0012-dns-interface.md records the mapping onto Konsul's config file.
import { parseGoDuration } from '../lib/duration.ts';
import { joinHostPort, parseAddress, parsePort, splitHostPort } from '../lib/host-port.ts';
import { bool as boolKind, ConfigError, hostPortOrOff, intAtLeast, jsonValue, listOf, parseHostPortOrOff, stringList, text as textKind, type HostPort, type ValueKind } from '../lib/config-values.ts';
import { setting, type ConfigOf } from '../plugins/settings.ts';

export interface DnsSoaSettings {
  /** Seconds; Consul's defaults. */
  readonly refresh: number;
  readonly retry: number;
  readonly expire: number;
  /** The SOA's MINIMUM and its own TTL: how long resolvers cache a negative answer. */
  readonly minTtl: number;
}

/** One `service_ttl` entry: an exact service name, or a prefix when the key ends with `*`. */
export interface ServiceTtlRule {
  readonly pattern: string;
  readonly ttlSeconds: number;
}

export interface DnsSettings {
  /** The zone answered, lowercase, without the trailing dot ("consul"). */
  readonly domain: string;
  /** Upstream servers ("host:port") for names outside the domain; empty = refuse them. */
  readonly recursors: readonly string[];
  readonly recursorTimeoutMs: number;
  /** TTL of node answers (and of NS records), seconds. */
  readonly nodeTtlSeconds: number;
  readonly serviceTtl: readonly ServiceTtlRule[];
  /** Leave out instances with a warning check (critical ones are always left out). */
  readonly onlyPassing: boolean;
  /** Set the TC bit when a UDP answer had to be cut. */
  readonly enableTruncate: boolean;
  /** Most answers in a UDP reply to a query without EDNS0 (Consul caps it at 8). */
  readonly udpAnswerLimit: number;
  /** Most A/AAAA answers for a service (0 = no limit). */
  readonly aRecordLimit: number;
  /** Node metadata as TXT records in the additional section of node A/AAAA answers. */
  readonly nodeMetaTxt: boolean;
  readonly soa: DnsSoaSettings;
}

/**
 * Consul's defaults (agent/config/default.go), except enable_truncate: Consul trims UDP answers
 * silently by default; Konsul sets the TC bit so that resolvers retry over TCP (issue 7, RFC 1035
 * 4.2.1). `"enable_truncate": false` gives Consul's behaviour.
 */
export const DNS_DEFAULTS: DnsSettings = {
  domain: 'consul',
  recursors: [],
  recursorTimeoutMs: 2000,
  nodeTtlSeconds: 0,
  serviceTtl: [],
  onlyPassing: false,
  enableTruncate: true,
  udpAnswerLimit: 3,
  aRecordLimit: 0,
  nodeMetaTxt: true,
  soa: { refresh: 3600, retry: 600, expire: 86400, minTtl: 0 },
};

/** Consul's hard cap on answers in a plain 512-byte UDP reply (maxUDPAnswerLimit). */
export const MAX_UDP_ANSWER_LIMIT = 8;


/** "consul", "consul.", "Consul." → "consul"; rejects what cannot be a DNS name. */
export function normaliseDomain(text: string, what = 'domain'): string {
  const domain = text.trim().toLowerCase().replace(/\.$/, '');
  const labels = domain.split('.');
  if (domain === '' || labels.some((l) => l === '' || l.length > 63) || domain.length > 253 || !/^[a-z0-9_.-]+$/.test(domain)) {
    throw new ConfigError(`${what}: "${text}" is not a valid domain name`);
  }
  return domain;
}

/**
 * A recursor address: "1.2.3.4", "1.2.3.4:53", "[::1]:5353", "::1". As Consul's recursorAddr: what
 * net.SplitHostPort refuses (no port, or a bare IPv6 address) gets port 53.
 */
export function normaliseRecursor(text: string): string {
  const t = text.trim();
  const split = splitHostPort(t);
  const host = split.ok ? split.host : t.startsWith('[') && t.endsWith(']') ? t.slice(1, -1) : t;
  const port = split.ok ? parsePort(split.port) : 53;
  if (host === '' || port === null || port < 1 || /[\s[\]]/.test(host)) throw new ConfigError(`recursors: "${text}" is not HOST[:PORT]`);
  return joinHostPort(host, port);
}

/** Parses a recursor "host:port" (as normalised) into its parts. */
export function splitRecursor(address: string): HostPort {
  const parsed = parseAddress(address);
  if (parsed === null) throw new ConfigError(`recursor "${address}" is not HOST:PORT`);
  return parsed;
}

/** The TTL of a service's answers: an exact entry wins, then the longest matching `prefix*`. */
export function serviceTtlSeconds(settings: Pick<DnsSettings, 'serviceTtl'>, service: string): number {
  // Service names are case-insensitive (the query's name is lowercased): `{"MyService": "30s"}` must
  // apply to MyService, which Consul's case-sensitive match against the lowercased name never does.
  const name = service.toLowerCase();
  let best: ServiceTtlRule | undefined;
  for (const rule of settings.serviceTtl) {
    const pattern = rule.pattern.toLowerCase();
    if (!pattern.endsWith('*')) {
      if (pattern === name) return rule.ttlSeconds;
      continue;
    }
    const prefix = pattern.slice(0, -1);
    if (name.startsWith(prefix) && (best === undefined || prefix.length > best.pattern.length - 1)) best = rule;
  }
  return best?.ttlSeconds ?? 0;
}

/** A Consul duration ("10s", "1m30s") or a number of seconds, as whole seconds. */
function seconds(v: unknown, key: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v >= 0) return v;
  if (typeof v === 'string') {
    const parsed = parseGoDuration(v);
    if (parsed.ok && parsed.ns >= 0) return Math.floor(parsed.ns / 1e9);
  }
  throw new ConfigError(`${key} must be a duration such as "10s" or a number of seconds`);
}

function milliseconds(v: unknown, key: string): number {
  if (typeof v === 'number' && Number.isSafeInteger(v) && v > 0) return v * 1000;
  if (typeof v === 'string') {
    const parsed = parseGoDuration(v);
    if (parsed.ok && parsed.ns > 0) return Math.max(1, Math.floor(parsed.ns / 1e6));
  }
  throw new ConfigError(`${key} must be a positive duration such as "2s"`);
}

const bool = (v: unknown, key: string): boolean => boolKind.fromJson(v, key);
const count = (v: unknown, key: string, min: number): number => intAtLeast(min).fromJson(v, key);

function object(v: unknown, key: string): Record<string, unknown> {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ConfigError(`${key} must be an object`);
  return v as Record<string, unknown>;
}

export function parseRecursors(v: unknown): string[] {
  return stringList(v, 'recursors').map(normaliseRecursor);
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] };

/** The parts of DnsSettings that the `dns_config` object sets (domain and recursors are top-level keys). */
export type DnsConfigObject = Partial<Omit<DnsSettings, 'domain' | 'recursors'>>;

/** Consul's `dns_config` object. Unknown keys are errors, as everywhere in Konsul's config file. */
export function parseDnsConfigObject(raw: unknown): DnsConfigObject {
  const input = object(raw, 'dns_config');
  const out: Mutable<DnsConfigObject> = {};
  for (const [key, value] of Object.entries(input)) {
    const k = `dns_config.${key}`;
    switch (key) {
      case 'node_ttl':
        out.nodeTtlSeconds = seconds(value, k);
        break;
      case 'service_ttl': {
        const rules: ServiceTtlRule[] = [];
        for (const [pattern, ttl] of Object.entries(object(value, k))) {
          if (pattern.indexOf('*') !== -1 && pattern.indexOf('*') !== pattern.length - 1) throw new ConfigError(`${k}: "*" is allowed only at the end of "${pattern}"`);
          rules.push({ pattern, ttlSeconds: seconds(ttl, `${k}.${pattern}`) });
        }
        out.serviceTtl = rules;
        break;
      }
      case 'only_passing':
        out.onlyPassing = bool(value, k);
        break;
      case 'enable_truncate':
        out.enableTruncate = bool(value, k);
        break;
      case 'udp_answer_limit':
        out.udpAnswerLimit = count(value, k, 1);
        break;
      case 'a_record_limit':
        out.aRecordLimit = count(value, k, 0);
        break;
      case 'enable_additional_node_meta_txt':
        out.nodeMetaTxt = bool(value, k);
        break;
      case 'recursor_timeout':
        out.recursorTimeoutMs = milliseconds(value, k);
        break;
      case 'soa': {
        const soa: Mutable<DnsSoaSettings> = { ...DNS_DEFAULTS.soa };
        for (const [field, v] of Object.entries(object(value, k))) {
          const n = count(v, `${k}.${field}`, 0);
          if (field === 'refresh') soa.refresh = n;
          else if (field === 'retry') soa.retry = n;
          else if (field === 'expire') soa.expire = n;
          else if (field === 'min_ttl') soa.minTtl = n;
          else throw new ConfigError(`${k}: unknown key "${field}" (known: refresh, retry, expire, min_ttl)`);
        }
        out.soa = soa;
        break;
      }
      default:
        throw new ConfigError(
          `unknown key "${k}" (known: node_ttl, service_ttl, only_passing, enable_truncate, udp_answer_limit, a_record_limit, enable_additional_node_meta_txt, recursor_timeout, soa)`,
        );
    }
  }
  return out;
}

/** Defaults, then the `dns_config` object, then the domain and recursors. */
export function dnsSettings(parts: { domain?: string; recursors?: readonly string[]; dnsConfig?: DnsConfigObject }): DnsSettings {
  return {
    ...DNS_DEFAULTS,
    ...(parts.dnsConfig ?? {}),
    domain: parts.domain !== undefined ? normaliseDomain(parts.domain) : DNS_DEFAULTS.domain,
    recursors: parts.recursors ?? DNS_DEFAULTS.recursors,
  };
}

/** `--dns-addr` / `dns_addr`: "HOST:PORT" (IPv6 in brackets), or "off" for no DNS interface. */
export function parseDnsAddr(input: string, what = 'dns_addr'): HostPort | null {
  return parseHostPortOrOff(input, what);
}

const domainKind: ValueKind<string> = {
  placeholder: '<domain>',
  fromJson: (v, what) => normaliseDomain(textKind().fromJson(v, what), what),
  fromText: (t, what) => normaliseDomain(t, what),
  format: (v) => v,
};

/**
 * The DNS plugin's settings (dns/plugin.ts), with Consul's key names: they are top-level keys of
 * the server's and the agent's config file, and the same flags on both commands.
 */
export const DNS_PLUGIN_SETTINGS = {
  dnsAddr: setting({
    kind: hostPortOrOff,
    default: { host: '127.0.0.1', port: 8600 } as HostPort | null,
    file: 'dns_addr',
    flag: '--dns-addr',
    help: 'address of the DNS interface, UDP and TCP ("off" disables it; the default port, when taken, leaves DNS off with a warning)',
  }),
  dnsDomain: setting({ kind: domainKind, default: DNS_DEFAULTS.domain, file: 'domain', flag: '--domain', help: 'the DNS domain answered' }),
  dnsRecursors: setting({
    kind: listOf((t) => normaliseRecursor(t), '<host[:port]>'),
    default: DNS_DEFAULTS.recursors,
    file: 'recursors',
    flag: '--recursor',
    defaultHelp: 'none, such names are refused',
    help: 'upstream DNS server for names outside the domain',
  }),
  dnsConfig: setting({
    kind: jsonValue<DnsConfigObject>((v) => parseDnsConfigObject(v)),
    default: {},
    file: 'dns_config',
    defaultHelp: "Consul's",
    help: "Consul's dns_config object: node_ttl, service_ttl, only_passing, enable_truncate, udp_answer_limit, a_record_limit, enable_additional_node_meta_txt, recursor_timeout, soa",
  }),
};

export type DnsPluginConfig = ConfigOf<typeof DNS_PLUGIN_SETTINGS>;
