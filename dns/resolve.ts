// The DNS interface's answers, as a pure function: a query and a catalog view in, a response out.
// No sockets, no clock, no ambient randomness: the SOA serial's time and the shuffle's random source
// come in through the context, so tests replay exactly.
//
// Consul's behaviour (agent/dns.go), which clients rely on:
// - `[tag.]<service>.service[.<dc>[.dc]].<domain>` and RFC 2782 `_<service>._<tag>[.service][...]`
//   (`_tcp` means no tag). A/AAAA answers are the instances' addresses (the service's, else the
//   node's); SRV answers carry priority 1, the instance's weight for its state, its port, and a
//   target with its address in the additional section: `<node>.node.<dc>.<domain>` for the node's
//   address, `<hex ip>.addr.<dc>.<domain>` for a service address. A host name instead of an IP is
//   a CNAME (an SRV target without additional records).
// - Critical instances are never answered; warning ones unless only_passing. Answers are shuffled.
// - A service with no answerable instance, an unknown node, a malformed name or another
//   datacenter is NXDOMAIN with the zone's SOA in the authority section; a name that exists but has
//   nothing of the asked type is NOERROR with the SOA (RFC 2308 NODATA).
// - SOA and NS questions are answered for the zone with up to three servers (the `consul` service)
//   as name servers and their addresses as glue. AXFR and IXFR are NOTIMP.
// - Names outside the zone go to the recursors when some are configured, else REFUSED.
// Where Konsul differs, docs/adr/0012-dns-interface.md says so and why.
import { isIP } from 'node:net';
import type { DnsCatalogView, DnsServiceInstance } from './catalog-view.ts';
import { MAX_UDP_ANSWER_LIMIT, serviceTtlSeconds, type DnsSettings } from './config.ts';
import {
  fitResponse,
  isEncodableName,
  MAX_MESSAGE_BYTES,
  MAX_UDP_PAYLOAD_BYTES,
  QTYPE,
  RCODE,
  UDP_PLAIN_LIMIT_BYTES,
  type DnsQuery,
  type DnsRecord,
  type DnsResponse,
} from './wire.ts';

export interface ResolveContext {
  readonly view: DnsCatalogView;
  readonly settings: DnsSettings;
  /** Seconds since the epoch: the SOA serial (Consul uses the current time). */
  readonly nowSeconds: number;
  /** Uniform in [0, 1): the shuffle of answers. */
  readonly random: () => number;
}

/** What the server does with a query: send this answer, or forward it to the recursors. */
export type Resolution = { readonly kind: 'answer'; readonly response: DnsResponse } | { readonly kind: 'forward' };

const SERVICE_KINDS = new Set(['service', 'node', 'addr', 'connect', 'virtual', 'ingress', 'query']);
/** Consul skips nodes whose names are not valid DNS labels when it lists name servers. */
const VALID_LABEL = /^[A-Za-z0-9-]+$/;

interface Sections {
  rcode: number;
  answers: DnsRecord[];
  authorities: DnsRecord[];
  additionals: DnsRecord[];
}

export function resolve(query: DnsQuery, ctx: ResolveContext): Resolution {
  const { settings } = ctx;
  const qname = query.question.name.toLowerCase();
  const domain = settings.domain;
  const inZone = qname === domain || qname.endsWith(`.${domain}`);
  const respond = (s: Sections, authoritative = true): Resolution => ({
    kind: 'answer',
    response: {
      id: query.id,
      opcode: 0,
      rcode: s.rcode,
      authoritative,
      recursionDesired: query.recursionDesired,
      recursionAvailable: settings.recursors.length > 0,
      truncated: false,
      checkingDisabled: query.checkingDisabled,
      question: query.question,
      answers: s.answers,
      authorities: s.authorities,
      additionals: s.additionals,
      edns: query.edns ? { udpSize: query.edns.udpSize } : null,
    },
  });
  if (!inZone) {
    if (settings.recursors.length > 0) return { kind: 'forward' };
    return respond({ rcode: RCODE.REFUSED, answers: [], authorities: [], additionals: [] }, false);
  }
  const type = query.question.type;
  if (type === QTYPE.AXFR || type === QTYPE.IXFR) return respond({ rcode: RCODE.NOTIMP, answers: [], authorities: [], additionals: [] });
  if (type === QTYPE.SOA) {
    const { ns, glue } = nameServers(ctx);
    return respond({ rcode: RCODE.NOERROR, answers: [soaRecord(ctx)], authorities: ns, additionals: glue });
  }
  if (type === QTYPE.NS) {
    const { ns, glue } = nameServers(ctx);
    return respond({ rcode: RCODE.NOERROR, answers: ns, authorities: [], additionals: glue });
  }
  const sections = lookup(query, qname, ctx);
  // NXDOMAIN and NODATA carry the SOA so that resolvers know how long to cache the absence.
  if (sections.rcode === RCODE.NXDOMAIN || (sections.rcode === RCODE.NOERROR && sections.answers.length === 0)) {
    sections.authorities = [soaRecord(ctx)];
  }
  return respond(sections);
}

function nxdomain(): Sections {
  return { rcode: RCODE.NXDOMAIN, answers: [], authorities: [], additionals: [] };
}

function lookup(query: DnsQuery, qname: string, ctx: ResolveContext): Sections {
  const { settings, view } = ctx;
  const domain = settings.domain;
  // The zone apex exists (it has the SOA): NODATA rather than Consul's NXDOMAIN.
  if (qname === domain) return { rcode: RCODE.NOERROR, answers: [], authorities: [], additionals: [] };
  const labels = qname.slice(0, -(domain.length + 1)).split('.');
  const type = query.question.type;
  // The rightmost kind label splits the name: what is looked up before it, the locality after it.
  // An SRV question may leave out "service" in RFC 2782 form (`_web._tcp.consul`).
  let kind = '';
  let parts: string[] = [];
  let suffixes: string[] = [];
  for (let i = labels.length - 1; i >= 0; i--) {
    const label = labels[i]!;
    if (SERVICE_KINDS.has(label)) {
      kind = label;
      parts = labels.slice(0, i);
      suffixes = labels.slice(i + 1);
      break;
    }
    if (type === QTYPE.SRV && label.startsWith('_')) {
      kind = 'service';
      parts = labels.slice(0, i + 1);
      suffixes = labels.slice(i + 1);
      break;
    }
  }
  if (parts.length === 0 || parts.some((p) => p === '')) return nxdomain();
  const datacenter = localityDatacenter(suffixes, view.datacenter);
  // Konsul serves one datacenter: any other has no path (Consul answers NXDOMAIN for those too).
  if (datacenter === null || datacenter !== view.datacenter.toLowerCase()) return nxdomain();
  switch (kind) {
    case 'service':
      return serviceLookup(query, parts, ctx);
    case 'node':
      return nodeLookup(query, parts.join('.'), ctx);
    case 'addr':
      return addrLookup(query, parts, ctx);
    default:
      // connect, virtual, ingress and prepared queries are not implemented: nothing has such a name.
      return nxdomain();
  }
}

/** `[]` → ours; `[dc]` or `[dc, "dc"]` → dc; anything else is not a locality Konsul knows. */
function localityDatacenter(suffixes: readonly string[], own: string): string | null {
  if (suffixes.length === 0) return own.toLowerCase();
  if (suffixes.length === 1) return suffixes[0]!;
  if (suffixes.length === 2 && suffixes[1] === 'dc') return suffixes[0]!;
  return null;
}

function serviceLookup(query: DnsQuery, parts: readonly string[], ctx: ResolveContext): Sections {
  let service: string;
  let tag: string;
  if (parts.length === 2 && parts[0]!.startsWith('_') && parts[1]!.startsWith('_')) {
    // RFC 2782: _service._protocol; `_tcp` is the conventional protocol, not a tag.
    service = parts[0]!.slice(1);
    tag = parts[1]!.slice(1) === 'tcp' ? '' : parts[1]!.slice(1);
  } else {
    service = parts[parts.length - 1]!;
    tag = parts.slice(0, -1).join('.');
  }
  if (service === '') return nxdomain();
  const instances = healthyInstances(ctx, service, tag);
  if (instances.length === 0) return nxdomain();
  shuffle(instances, ctx.random);
  const ttl = serviceTtlSeconds(ctx.settings, service);
  const out: Sections = { rcode: RCODE.NOERROR, answers: [], authorities: [], additionals: [] };
  const datacenter = ctx.view.datacenter;
  const domain = ctx.settings.domain;
  const name = query.question.name;
  const type = query.question.type;
  if (type === QTYPE.SRV) {
    const seen = new Set<string>();
    for (const instance of instances) {
      const key = `${instance.node}\u0000${instance.serviceAddress}\u0000${instance.port}`;
      if (seen.has(key)) continue;
      seen.add(key);
      const { address, family, target } = instanceNames(instance, datacenter, domain);
      // No address, or a node name or host name that is not a valid DNS name (a label over 63
      // bytes): no target, so that instance is left out and the others are still answered.
      if (target === null) continue;
      out.answers.push({ type: 'SRV', name, ttl, priority: 1, weight: srvWeight(instance), port: instance.port, target });
      if (family === 4) out.additionals.push({ type: 'A', name: target, ttl, address });
      else if (family === 6) out.additionals.push({ type: 'AAAA', name: target, ttl, address });
    }
    return out;
  }
  const seen = new Set<string>();
  let cname: DnsRecord | null = null;
  for (const instance of instances) {
    const { address, family, target } = instanceNames(instance, datacenter, domain);
    if (address === '') continue;
    if (family === 0) {
      // An external service: answered only when no instance has an IP (Consul keeps the first CNAME).
      if (cname === null && target !== null) cname = { type: 'CNAME', name, ttl, target };
      continue;
    }
    const record = addressRecordFor(type, name, address, ttl, family);
    if (record === null || seen.has(address)) continue;
    seen.add(address);
    out.answers.push(record);
    if (ctx.settings.aRecordLimit > 0 && out.answers.length >= ctx.settings.aRecordLimit) break;
  }
  if (out.answers.length === 0 && cname !== null) out.answers.push(cname);
  return out;
}

interface InstanceNames {
  readonly zone: string;
  /** The service's address, else the node's ('' for none). */
  readonly address: string;
  /** 4, 6, or 0 for a host name. */
  readonly family: number;
  /**
   * The SRV target (or CNAME target for a host name): `<node>.node.<dc>.<domain>`,
   * `<hex>.addr.<dc>.<domain>` or the host name; null when there is none a message can carry.
   */
  readonly target: string | null;
}

/**
 * What an instance's records need, derived once per instance object: a server's view hands out the
 * same objects until the service changes (dns/catalog-view.ts), so repeated queries skip the
 * address parsing and name building. Keyed by object, so a view that builds new ones costs a miss.
 */
const instanceNamesMemo = new WeakMap<DnsServiceInstance, InstanceNames>();

function instanceNames(instance: DnsServiceInstance, datacenter: string, domain: string): InstanceNames {
  const zone = `${datacenter}.${domain}`;
  const memo = instanceNamesMemo.get(instance);
  if (memo !== undefined && memo.zone === zone) return memo;
  const address = instance.serviceAddress || instance.nodeAddress;
  const family = address === '' ? 0 : isIP(address);
  let target: string | null = null;
  if (address !== '') {
    target = family === 0 ? address : instance.serviceAddress ? `${addrLabel(address)}.addr.${zone}` : `${instance.node}.node.${zone}`;
    if (!isEncodableName(target)) target = null;
  }
  const names: InstanceNames = { zone, address, family, target };
  instanceNamesMemo.set(instance, names);
  return names;
}

function healthyInstances(ctx: ResolveContext, service: string, tag: string): DnsServiceInstance[] {
  const wantedTag = tag.toLowerCase();
  const onlyPassing = ctx.settings.onlyPassing;
  return ctx.view.serviceInstances(service).filter((instance) => {
    if (wantedTag !== '' && !instance.tags.some((t) => t.toLowerCase() === wantedTag)) return false;
    return instance.checkStatuses.every((s) => s !== 'critical' && (!onlyPassing || s === 'passing'));
  });
}

/** Consul's findWeight: the Weights entry for the instance's aggregated state. */
function srvWeight(instance: DnsServiceInstance): number {
  const statuses = instance.checkStatuses;
  if (statuses.includes('critical')) return 0;
  if (statuses.includes('warning')) return clampU16(instance.weights.warning);
  if (statuses.every((s) => s === 'passing')) return clampU16(instance.weights.passing);
  return 1;
}

function clampU16(n: number): number {
  return Number.isInteger(n) ? Math.max(0, Math.min(0xffff, n)) : 1;
}

function nodeLookup(query: DnsQuery, nodeName: string, ctx: ResolveContext): Sections {
  const node = ctx.view.node(nodeName);
  if (node === undefined) return nxdomain();
  const out: Sections = { rcode: RCODE.NOERROR, answers: [], authorities: [], additionals: [] };
  const type = query.question.type;
  const name = query.question.name;
  const ttl = ctx.settings.nodeTtlSeconds;
  if (type !== QTYPE.ANY && type !== QTYPE.A && type !== QTYPE.AAAA && type !== QTYPE.TXT) return out;
  if (type !== QTYPE.TXT && node.address !== '') {
    if (isIP(node.address) === 0) {
      if (isEncodableName(node.address)) out.answers.push({ type: 'CNAME', name, ttl, target: node.address });
    } else {
      const record = addressRecordFor(type, name, node.address, ttl);
      if (record !== null) out.answers.push(record);
    }
  }
  const meta = Object.keys(node.meta)
    .sort()
    .map((key): DnsRecord => ({ type: 'TXT', name, ttl, texts: [metaText(key, node.meta[key]!)] }));
  if (type === QTYPE.TXT || type === QTYPE.ANY) out.answers.push(...meta);
  else if (ctx.settings.nodeMetaTxt) out.additionals.push(...meta);
  return out;
}

/**
 * Node metadata as TXT: `rfc1035-` keys give their value alone; others are RFC 1464 `key=value`
 * with the key's backquote, equals sign and leading and trailing spaces quoted by a backquote.
 */
export function metaText(key: string, value: string): string {
  if (key.toLowerCase().startsWith('rfc1035-')) return value;
  let k = key.replace(/`/g, '``').replace(/=/g, '`=');
  k = k.replace(/^ +/, (spaces) => '` '.repeat(spaces.length)).replace(/ +$/, (spaces) => '` '.repeat(spaces.length));
  return `${k}=${value.replace(/`/g, '``')}`;
}

/** `<hex>.addr[.dc].<domain>`: 8 hex digits for IPv4, 32 for IPv6. */
function addrLookup(query: DnsQuery, parts: readonly string[], ctx: ResolveContext): Sections {
  if (parts.length !== 1) return nxdomain();
  const hex = parts[0]!;
  if (!/^[0-9a-f]+$/.test(hex) || (hex.length !== 8 && hex.length !== 32)) return nxdomain();
  const address =
    hex.length === 8
      ? [0, 2, 4, 6].map((i) => parseInt(hex.slice(i, i + 2), 16)).join('.')
      : [...Array(8).keys()].map((i) => parseInt(hex.slice(i * 4, i * 4 + 4), 16).toString(16)).join(':');
  const out: Sections = { rcode: RCODE.NOERROR, answers: [], authorities: [], additionals: [] };
  const record = addressRecord(query.question.name, address, ctx.settings.nodeTtlSeconds);
  const type = query.question.type;
  if (type === QTYPE.ANY || (record.type === 'A' && type === QTYPE.A) || (record.type === 'AAAA' && type === QTYPE.AAAA)) out.answers.push(record);
  else out.additionals.push(record);
  return out;
}

/** The `.addr.` label of an address: its bytes in hex (Consul's encodeIPAsFqdn). */
export function addrLabel(address: string): string {
  if (isIP(address) === 4) return address.split('.').map((p) => Number(p).toString(16).padStart(2, '0')).join('');
  return expandIPv6(address)
    .map((g) => g.toString(16).padStart(4, '0'))
    .join('');
}

function expandIPv6(address: string): number[] {
  let text = address;
  const v4 = /(\d+)\.(\d+)\.(\d+)\.(\d+)$/.exec(text);
  if (v4) {
    const [a, b, c, d] = v4.slice(1).map(Number) as [number, number, number, number];
    text = `${text.slice(0, -v4[0].length)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const groups = (s: string): number[] => (s === '' ? [] : s.split(':').map((g) => parseInt(g, 16)));
  const [head, tail] = text.split('::') as [string, string | undefined];
  const before = groups(head);
  if (tail === undefined) return before;
  const after = groups(tail);
  return [...before, ...new Array<number>(8 - before.length - after.length).fill(0), ...after];
}

function addressRecord(name: string, address: string, ttl: number): DnsRecord {
  return isIP(address) === 4 ? { type: 'A', name, ttl, address } : { type: 'AAAA', name, ttl, address };
}

/** Consul's makeARecord: which address records a question type gets (TXT and NS included). */
function addressRecordFor(type: number, name: string, address: string, ttl: number, family = isIP(address)): DnsRecord | null {
  const both = type === QTYPE.ANY || type === QTYPE.SRV || type === QTYPE.NS || type === QTYPE.TXT;
  if (family === 4 && (both || type === QTYPE.A)) return { type: 'A', name, ttl, address };
  if (family === 6 && (both || type === QTYPE.AAAA)) return { type: 'AAAA', name, ttl, address };
  return null;
}

export function soaRecord(ctx: ResolveContext): DnsRecord {
  const { domain, soa } = ctx.settings;
  return {
    type: 'SOA',
    name: domain,
    // The SOA's own TTL equals its minimum, so that caches drop it with the negative answer.
    ttl: soa.minTtl,
    primary: `ns.${domain}`,
    mailbox: `hostmaster.${domain}`,
    serial: ctx.nowSeconds >>> 0,
    refresh: soa.refresh,
    retry: soa.retry,
    expire: soa.expire,
    minimum: soa.minTtl,
  };
}

/** Up to three healthy servers (instances of the `consul` service) as the zone's name servers. */
function nameServers(ctx: ResolveContext): { ns: DnsRecord[]; glue: DnsRecord[] } {
  const { domain, nodeTtlSeconds } = ctx.settings;
  const servers = healthyInstances(ctx, 'consul', '');
  shuffle(servers, ctx.random);
  const ns: DnsRecord[] = [];
  const glue: DnsRecord[] = [];
  const seen = new Set<string>();
  for (const server of servers) {
    if (!VALID_LABEL.test(server.node) || seen.has(server.node.toLowerCase())) continue;
    seen.add(server.node.toLowerCase());
    const target = `${server.node}.node.${ctx.view.datacenter}.${domain}`.toLowerCase();
    if (!isEncodableName(target)) continue;
    ns.push({ type: 'NS', name: domain, ttl: nodeTtlSeconds, target });
    if (isIP(server.nodeAddress) !== 0) glue.push(addressRecord(target, server.nodeAddress, nodeTtlSeconds));
    if (ns.length >= 3) break;
  }
  return { ns, glue };
}

/** Fisher–Yates, in place. */
function shuffle<T>(items: T[], random: () => number): void {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    const t = items[i]!;
    items[i] = items[j]!;
    items[j] = t;
  }
}

export type Transport = 'udp' | 'tcp';

/**
 * The answer as it goes on the wire. Over UDP: at most 512 bytes, or the requester's EDNS0 size;
 * without EDNS0 also at most min(udp_answer_limit, 8) answers (Consul's trimUDPResponse). Cut
 * answers set the TC bit when enable_truncate is on, so the client retries over TCP, where only the
 * 64 KiB message limit applies.
 */
export function encodeForTransport(response: DnsResponse, transport: Transport, settings: DnsSettings): { message: Buffer; truncated: boolean; answers: number } {
  if (transport === 'tcp') {
    const fitted = fitResponse(response, MAX_MESSAGE_BYTES);
    return { message: fitted.message, truncated: false, answers: fitted.response.answers.length };
  }
  const maxBytes = response.edns ? Math.min(Math.max(response.edns.udpSize, UDP_PLAIN_LIMIT_BYTES), MAX_UDP_PAYLOAD_BYTES) : UDP_PLAIN_LIMIT_BYTES;
  const maxAnswers = maxBytes === UDP_PLAIN_LIMIT_BYTES ? Math.min(settings.udpAnswerLimit, MAX_UDP_ANSWER_LIMIT) : Infinity;
  const fitted = fitResponse(response, maxBytes, maxAnswers);
  if (!fitted.trimmed || !settings.enableTruncate) return { message: fitted.message, truncated: false, answers: fitted.response.answers.length };
  // The TC bit is in the header's third byte: set it without encoding again.
  const message = fitted.message;
  message[2] = message[2]! | 0x02;
  return { message, truncated: true, answers: fitted.response.answers.length };
}
