// The resolver against a real catalog (the FSM's CatalogTable behind catalogTableView): every
// lookup form, health filtering, TTLs, NXDOMAIN versus NODATA, SOA/NS, and fitting answers into
// UDP limits. Answers are also encoded and decoded again by dns2's parser, an independent decoder.
import t from 'tap';
import { encodeCommand } from '../fsm/commands.ts';
import { KonsulFsm } from '../fsm/konsul-fsm.ts';
import type { CatalogCheckSpec, CatalogServiceSpec } from '../fsm/state/catalog-commands.ts';
import { Prng } from '../raft/core/prng.ts';
import { catalogTableView, type DnsCatalogView } from './catalog-view.ts';
import { dnsSettings, parseDnsConfigObject, serviceTtlSeconds, type DnsSettings } from './config.ts';
import { addrLabel, encodeForTransport, metaText, resolve, type ResolveContext } from './resolve.ts';
import { parseWire } from './test-support.ts';
import { QTYPE, RCODE, type DnsQuery, type DnsRecord, type DnsResponse } from './wire.ts';

const NOW_SECONDS = 1_800_000_000;

class Catalog {
  readonly fsm = new KonsulFsm();
  readonly view: DnsCatalogView = catalogTableView(this.fsm.catalog, 'dc1');

  register(node: string, address: string, svc?: Partial<CatalogServiceSpec> & { ID: string; Service: string }, checks: CatalogCheckSpec[] = [], meta: Record<string, string> = {}): void {
    const service: CatalogServiceSpec | undefined = svc && {
      Tags: [],
      Address: '',
      Port: 0,
      Meta: {},
      EnableTagOverride: false,
      Weights: { Passing: 1, Warning: 1 },
      TaggedAddresses: {},
      Dependencies: [],
      ...svc,
    };
    const result = this.fsm.apply(
      this.fsm.appliedIndex + 1,
      encodeCommand({
        type: 'catalogRegister',
        node: { Node: node, ID: '', Address: address, Datacenter: 'dc1', TaggedAddresses: {}, Meta: meta },
        skipNodeUpdate: false,
        ...(service ? { service } : {}),
        checks,
      }),
    ) as { ok: boolean; error?: string };
    if (!result.ok) throw new Error(`register failed: ${result.error}`);
  }
}

function check(id: string, status: CatalogCheckSpec['Status'], serviceId = ''): CatalogCheckSpec {
  return { CheckID: id, Name: id, Status: status, Notes: '', Output: '', ServiceID: serviceId, Type: '', Interval: '', Timeout: '', Definition: {} };
}

function query(name: string, type: number, edns: number | null = null): DnsQuery {
  return { id: 4242, recursionDesired: true, checkingDisabled: false, question: { name, type, class: 1 }, edns: edns === null ? null : { udpSize: edns } };
}

function ctx(catalog: Catalog, settings: Partial<DnsSettings> = {}, seed = 1): ResolveContext {
  const prng = new Prng(seed);
  return { view: catalog.view, settings: { ...dnsSettings({}), ...settings }, nowSeconds: NOW_SECONDS, random: () => prng.float() };
}

function answer(q: DnsQuery, c: ResolveContext): DnsResponse {
  const r = resolve(q, c);
  if (r.kind !== 'answer') throw new Error('expected an answer, got a forward');
  return r.response;
}

const sortedAddresses = (records: readonly DnsRecord[]) =>
  records
    .filter((r) => r.type === 'A' || r.type === 'AAAA')
    .map((r) => (r as { address: string }).address)
    .sort();

/** Five web instances on five nodes; web4 has a warning check, web5 a critical one. */
function webCatalog(): Catalog {
  const c = new Catalog();
  for (let i = 1; i <= 5; i++) {
    const status = i === 4 ? 'warning' : i === 5 ? 'critical' : 'passing';
    c.register(`node${i}`, `10.0.0.${i}`, { ID: 'web', Service: 'web', Port: 8000 + i, Tags: i % 2 ? ['primary', 'v1'] : ['v2'] }, [check('web-check', status, 'web')]);
  }
  return c;
}

t.test('A and SRV for a service: healthy instances only, additional A records for SRV targets', async (t) => {
  const c = webCatalog();
  const a = answer(query('web.service.consul', QTYPE.A), ctx(c));
  t.equal(a.rcode, RCODE.NOERROR);
  t.equal(a.authoritative, true);
  t.same(sortedAddresses(a.answers), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4'], 'warning included, critical never');
  t.ok(a.answers.every((r) => r.name === 'web.service.consul' && r.ttl === 0), 'owner name as asked, TTL 0 by default');

  const srv = answer(query('web.service.consul', QTYPE.SRV), ctx(c));
  t.equal(srv.answers.length, 4);
  for (const r of srv.answers) {
    if (r.type !== 'SRV') throw new Error('not SRV');
    const n = Number(/^node(\d)\.node\.dc1\.consul$/.exec(r.target)?.[1]);
    t.equal(r.port, 8000 + n, `port of ${r.target}`);
    t.equal(r.priority, 1);
    t.equal(r.weight, 1);
    t.same(
      srv.additionals.filter((x) => x.name === r.target),
      [{ type: 'A', name: r.target, ttl: 0, address: `10.0.0.${n}` }],
      'its address in the additional section',
    );
  }
});

t.test('only_passing leaves out warning instances too', async (t) => {
  const c = webCatalog();
  const a = answer(query('web.service.consul', QTYPE.A), ctx(c, { onlyPassing: true }));
  t.same(sortedAddresses(a.answers), ['10.0.0.1', '10.0.0.2', '10.0.0.3']);
});

t.test('node-level checks count for every service on the node', async (t) => {
  const c = new Catalog();
  c.register('n1', '10.1.0.1', { ID: 'db', Service: 'db', Port: 5432 }, [check('serfHealth', 'critical')]);
  c.register('n2', '10.1.0.2', { ID: 'db', Service: 'db', Port: 5432 }, [check('serfHealth', 'passing')]);
  t.same(sortedAddresses(answer(query('db.service.consul', QTYPE.A), ctx(c)).answers), ['10.1.0.2']);
});

t.test('tag filter, RFC 2782 form, datacenter label, case-insensitivity', async (t) => {
  const c = webCatalog();
  t.same(sortedAddresses(answer(query('primary.web.service.consul', QTYPE.A), ctx(c)).answers), ['10.0.0.1', '10.0.0.3']);
  t.same(sortedAddresses(answer(query('V2.Web.Service.Consul', QTYPE.A), ctx(c)).answers), ['10.0.0.2', '10.0.0.4'], 'names and tags ignore case');
  const rfc = answer(query('_web._primary.service.consul', QTYPE.SRV), ctx(c));
  t.same(rfc.answers.map((r) => (r as { port: number }).port).sort(), [8001, 8003]);
  const tcp = answer(query('_web._tcp.service.consul', QTYPE.SRV), ctx(c));
  t.equal(tcp.answers.length, 4, '_tcp is not a tag');
  const noServiceLabel = answer(query('_web._tcp.consul', QTYPE.SRV), ctx(c));
  t.equal(noServiceLabel.answers.length, 4, 'an RFC 2782 SRV question may leave out "service"');
  t.equal(answer(query('web.service.dc1.consul', QTYPE.A), ctx(c)).answers.length, 4, 'own datacenter label');
  t.equal(answer(query('web.service.dc1.dc.consul', QTYPE.A), ctx(c)).answers.length, 4, '<dc>.dc form');
  const other = answer(query('web.service.dc2.consul', QTYPE.A), ctx(c));
  t.equal(other.rcode, RCODE.NXDOMAIN, 'another datacenter has no path');
  t.equal(answer(query('nope.web.service.consul', QTYPE.A), ctx(c)).rcode, RCODE.NXDOMAIN, 'no instance has the tag');
});

t.test('NXDOMAIN with the SOA for unknown names; NODATA (NOERROR + SOA) for names without that type', async (t) => {
  const c = webCatalog();
  for (const name of ['nope.service.consul', 'web.nope.consul', 'service.consul', 'x.node.consul', 'db.query.consul', 'web.connect.consul', 'a.b.c.service.dc1.extra.consul']) {
    const r = answer(query(name, QTYPE.A), ctx(c));
    t.equal(r.rcode, RCODE.NXDOMAIN, name);
    t.equal(r.answers.length, 0);
    t.same(r.authorities.map((x) => x.type), ['SOA'], `${name}: SOA in authority`);
  }
  const aaaa = answer(query('web.service.consul', QTYPE.AAAA), ctx(c));
  t.equal(aaaa.rcode, RCODE.NOERROR, 'the service exists, it has no IPv6 address');
  t.equal(aaaa.answers.length, 0);
  t.same(aaaa.authorities.map((x) => x.type), ['SOA']);
  const mx = answer(query('node1.node.consul', QTYPE.MX), ctx(c));
  t.equal(mx.rcode, RCODE.NOERROR);
  t.same(mx.authorities.map((x) => x.type), ['SOA']);
  const apex = answer(query('consul', QTYPE.A), ctx(c));
  t.equal(apex.rcode, RCODE.NOERROR, 'the zone apex exists');
});

t.test('SOA record fields are Consul\'s and configurable; NS lists healthy servers with glue', async (t) => {
  const c = new Catalog();
  c.register('s1', '10.9.0.1', { ID: 'consul', Service: 'consul', Port: 8300 }, [check('serfHealth', 'passing')]);
  c.register('s2', '10.9.0.2', { ID: 'consul', Service: 'consul', Port: 8300 }, [check('serfHealth', 'critical')]);
  const soa = answer(query('consul', QTYPE.SOA), ctx(c));
  t.same(soa.answers, [
    { type: 'SOA', name: 'consul', ttl: 0, primary: 'ns.consul', mailbox: 'hostmaster.consul', serial: NOW_SECONDS, refresh: 3600, retry: 600, expire: 86400, minimum: 0 },
  ]);
  t.same(soa.authorities, [{ type: 'NS', name: 'consul', ttl: 0, target: 's1.node.dc1.consul' }], 'critical servers are not name servers');
  t.same(soa.additionals, [{ type: 'A', name: 's1.node.dc1.consul', ttl: 0, address: '10.9.0.1' }]);
  const custom = answer(query('consul', QTYPE.SOA), ctx(c, { soa: { refresh: 1, retry: 2, expire: 3, minTtl: 4 }, nodeTtlSeconds: 7 }));
  t.match(custom.answers[0], { ttl: 4, refresh: 1, retry: 2, expire: 3, minimum: 4 });
  t.match(custom.authorities[0], { type: 'NS', ttl: 7 });
  const ns = answer(query('consul', QTYPE.NS), ctx(c));
  t.same(ns.answers, [{ type: 'NS', name: 'consul', ttl: 0, target: 's1.node.dc1.consul' }]);
  t.same(ns.additionals.map((r) => r.name), ['s1.node.dc1.consul']);
  for (let i = 3; i <= 6; i++) c.register(`s${i}`, `10.9.0.${i}`, { ID: 'consul', Service: 'consul', Port: 8300 });
  t.equal(answer(query('consul', QTYPE.NS), ctx(c)).answers.length, 3, 'at most three name servers');
});

t.test('node lookups: A, AAAA, ANY, TXT from metadata, unknown nodes', async (t) => {
  const c = new Catalog();
  c.register('alpha', '10.2.0.1', undefined, [], { rack: 'r1', 'rfc1035-note': 'raw text', 'a=b': 'c' });
  c.register('beta', '2001:db8::7');
  c.register('gamma.example', 'gamma.example.org');
  const a = answer(query('alpha.node.consul', QTYPE.A), ctx(c));
  t.same(a.answers, [{ type: 'A', name: 'alpha.node.consul', ttl: 0, address: '10.2.0.1' }]);
  t.same(
    a.additionals.map((r) => (r.type === 'TXT' ? r.texts[0] : '')),
    ['a`=b=c', 'rack=r1', 'raw text'],
    'metadata as TXT in the additional section (RFC 1464; rfc1035- keys give the value alone)',
  );
  t.same(answer(query('alpha.node.consul', QTYPE.A), ctx(c, { nodeMetaTxt: false })).additionals, []);
  const txt = answer(query('alpha.node.dc1.consul', QTYPE.TXT), ctx(c));
  t.same(txt.answers.map((r) => r.type), ['TXT', 'TXT', 'TXT']);
  const any = answer(query('alpha.node.consul', QTYPE.ANY), ctx(c, { nodeTtlSeconds: 30 }));
  t.same(any.answers.map((r) => r.type), ['A', 'TXT', 'TXT', 'TXT']);
  t.ok(any.answers.every((r) => r.ttl === 30), 'node_ttl');
  t.same(answer(query('beta.node.consul', QTYPE.AAAA), ctx(c)).answers, [{ type: 'AAAA', name: 'beta.node.consul', ttl: 0, address: '2001:db8::7' }]);
  t.same(answer(query('beta.node.consul', QTYPE.A), ctx(c)).answers, [], 'no A for an IPv6 node');
  t.same(answer(query('gamma.example.node.consul', QTYPE.A), ctx(c)).answers, [{ type: 'CNAME', name: 'gamma.example.node.consul', ttl: 0, target: 'gamma.example.org' }], 'dots in node names; host names are CNAMEs');
  t.equal(answer(query('delta.node.consul', QTYPE.A), ctx(c)).rcode, RCODE.NXDOMAIN);
  t.equal(answer(query('delta.node.consul', QTYPE.MX), ctx(c)).rcode, RCODE.NXDOMAIN);
});

t.test('service addresses: SRV targets under .addr., which resolve back', async (t) => {
  const c = new Catalog();
  c.register('n1', '10.3.0.1', { ID: 'api1', Service: 'api', Port: 9000, Address: '192.168.1.10' });
  c.register('n2', '10.3.0.2', { ID: 'api2', Service: 'api', Port: 9001, Address: 'fd00::1' });
  c.register('n3', '10.3.0.3', { ID: 'api3', Service: 'api', Port: 9002 });
  const srv = answer(query('api.service.consul', QTYPE.SRV), ctx(c));
  const targets = srv.answers.map((r) => (r as { target: string }).target).sort();
  t.same(targets, ['c0a8010a.addr.dc1.consul', 'fd000000000000000000000000000001.addr.dc1.consul', 'n3.node.dc1.consul']);
  t.same(sortedAddresses(srv.additionals), ['10.3.0.3', '192.168.1.10', 'fd00::1']);
  t.same(answer(query('c0a8010a.addr.dc1.consul', QTYPE.A), ctx(c)).answers, [{ type: 'A', name: 'c0a8010a.addr.dc1.consul', ttl: 0, address: '192.168.1.10' }]);
  const v6 = answer(query('fd000000000000000000000000000001.addr.dc1.consul', QTYPE.AAAA), ctx(c));
  t.equal(v6.answers.length, 1);
  t.equal(answer(query('zz.addr.consul', QTYPE.A), ctx(c)).rcode, RCODE.NXDOMAIN);
  t.same(sortedAddresses(answer(query('api.service.consul', QTYPE.A), ctx(c)).answers), ['10.3.0.3', '192.168.1.10'], 'A: service address first, else the node\'s');
  t.same(sortedAddresses(answer(query('api.service.consul', QTYPE.ANY), ctx(c)).answers), ['10.3.0.3', '192.168.1.10', 'fd00::1'], 'ANY: both families');
  t.equal(addrLabel('10.0.0.255'), '0a0000ff');
  t.equal(addrLabel('::ffff:1.2.3.4'), '00000000000000000000ffff01020304');
});

t.test('SRV weights follow the instance state', async (t) => {
  const c = new Catalog();
  c.register('n1', '10.4.0.1', { ID: 'q', Service: 'q', Port: 1, Weights: { Passing: 10, Warning: 3 } }, [check('c', 'passing', 'q')]);
  c.register('n2', '10.4.0.2', { ID: 'q', Service: 'q', Port: 2, Weights: { Passing: 10, Warning: 3 } }, [check('c', 'warning', 'q')]);
  const weights = answer(query('q.service.consul', QTYPE.SRV), ctx(c)).answers.map((r) => [(r as { port: number }).port, (r as { weight: number }).weight]);
  t.same(weights.sort(), [
    [1, 10],
    [2, 3],
  ]);
});

t.test('duplicate instances (same address and port) are answered once', async (t) => {
  const c = new Catalog();
  c.register('n1', '10.5.0.1', { ID: 'a', Service: 'dup', Port: 80 });
  c.register('n1', '10.5.0.1', { ID: 'b', Service: 'dup', Port: 80 });
  c.register('n1', '10.5.0.1', { ID: 'c', Service: 'dup', Port: 81 });
  t.equal(answer(query('dup.service.consul', QTYPE.A), ctx(c)).answers.length, 1);
  t.equal(answer(query('dup.service.consul', QTYPE.SRV), ctx(c)).answers.length, 2);
});

t.test('answers are shuffled: every instance comes first sometimes', async (t) => {
  const c = webCatalog();
  const first = new Set<string>();
  for (let seed = 1; seed <= 60; seed++) {
    first.add((answer(query('web.service.consul', QTYPE.A), ctx(c, {}, seed)).answers[0] as { address: string }).address);
  }
  t.same([...first].sort(), ['10.0.0.1', '10.0.0.2', '10.0.0.3', '10.0.0.4']);
});

t.test('service TTLs: exact name, longest prefix*, wildcard, default 0', async (t) => {
  const settings = parseDnsConfigObject({ service_ttl: { '*': '5s', 'web*': 20, 'web-api': '1m', 'w*': '7s' } });
  const s = { serviceTtl: settings.serviceTtl! };
  t.equal(serviceTtlSeconds(s, 'web-api'), 60);
  t.equal(serviceTtlSeconds(s, 'web-ui'), 20);
  t.equal(serviceTtlSeconds(s, 'wx'), 7);
  t.equal(serviceTtlSeconds(s, 'db'), 5);
  t.equal(serviceTtlSeconds({ serviceTtl: [] }, 'db'), 0);
  // Regression: a pattern with capitals never matched, the queried name being lowercased.
  const mixed = { serviceTtl: parseDnsConfigObject({ service_ttl: { MyService: '30s', 'Pay*': '9s' } }).serviceTtl! };
  t.equal(serviceTtlSeconds(mixed, 'myservice'), 30);
  t.equal(serviceTtlSeconds(mixed, 'payments'), 9);
  const upper = new Catalog();
  upper.register('n1', '10.1.1.1', { ID: 'MyService', Service: 'MyService', Port: 1 });
  t.same(answer(query('MyService.service.consul', QTYPE.A), ctx(upper, { serviceTtl: mixed.serviceTtl })).answers.map((r) => r.ttl), [30]);
  const c = webCatalog();
  const srv = answer(query('web.service.consul', QTYPE.SRV), ctx(c, { serviceTtl: settings.serviceTtl! }));
  t.ok([...srv.answers, ...srv.additionals].every((r) => r.ttl === 20), 'answers and their additional records');
});

t.test('dns_config parsing: Consul keys, durations, unknown keys rejected', async (t) => {
  t.same(parseDnsConfigObject({ node_ttl: '1m30s', only_passing: true, enable_truncate: false, udp_answer_limit: 5, recursor_timeout: '500ms', soa: { min_ttl: 9 } }), {
    nodeTtlSeconds: 90,
    onlyPassing: true,
    enableTruncate: false,
    udpAnswerLimit: 5,
    recursorTimeoutMs: 500,
    soa: { refresh: 3600, retry: 600, expire: 86400, minTtl: 9 },
  });
  t.throws(() => parseDnsConfigObject({ nodettl: '1s' }), /unknown key "dns_config.nodettl"/);
  t.throws(() => parseDnsConfigObject({ node_ttl: 'soon' }), /duration/);
  t.throws(() => parseDnsConfigObject({ service_ttl: { 'a*b': '1s' } }), /only at the end/);
  t.throws(() => parseDnsConfigObject({ udp_answer_limit: 0 }), /at least 1/);
  t.throws(() => dnsSettings({ domain: 'bad..domain' }), /not a valid domain/);
  t.equal(dnsSettings({ domain: 'Example.Internal.' }).domain, 'example.internal');
});

t.test('a custom domain; names outside it are refused without recursors and forwarded with them', async (t) => {
  const c = webCatalog();
  t.equal(answer(query('web.service.example.internal', QTYPE.A), ctx(c, { domain: 'example.internal' })).answers.length, 4);
  const refused = answer(query('web.service.consul', QTYPE.A), ctx(c, { domain: 'example.internal' }));
  t.equal(refused.rcode, RCODE.REFUSED);
  t.equal(refused.authoritative, false);
  t.equal(resolve(query('www.example.com', QTYPE.A), ctx(c, { recursors: ['127.0.0.1:53'] })).kind, 'forward');
  t.equal(answer(query('web.service.consul', QTYPE.A), ctx(c, { recursors: ['127.0.0.1:53'] })).recursionAvailable, true);
  t.equal(answer(query('notconsul', QTYPE.A), ctx(c)).rcode, RCODE.REFUSED, 'a name that only ends like the domain');
});

t.test('AXFR and IXFR are NOTIMP', async (t) => {
  const c = webCatalog();
  t.equal(answer(query('consul', QTYPE.AXFR), ctx(c)).rcode, RCODE.NOTIMP);
  t.equal(answer(query('consul', QTYPE.IXFR), ctx(c)).rcode, RCODE.NOTIMP);
});

t.test('UDP fitting: 512 bytes, udp_answer_limit without EDNS, EDNS size, TC bit; TCP gets all', async (t) => {
  const c = new Catalog();
  for (let i = 1; i <= 40; i++) c.register(`a-rather-long-node-name-${i}`, `10.6.0.${i}`, { ID: 'big', Service: 'big', Port: 7000 + i });
  const settings = dnsSettings({});
  const srv = answer(query('big.service.consul', QTYPE.SRV), ctx(c));
  t.equal(srv.answers.length, 40);

  const plain = encodeForTransport(srv, 'udp', settings);
  t.ok(plain.message.length <= 512);
  t.equal(plain.truncated, true);
  t.equal(plain.answers, 3, 'udp_answer_limit (3) applies without EDNS0');
  const decoded = parseWire(plain.message);
  t.equal(decoded.header.tc, 1, 'TC bit on the wire');
  t.equal(decoded.answers.length, 3);
  t.equal(decoded.additionals.length, 3, 'additional records follow the SRV records kept');

  const silent = encodeForTransport(srv, 'udp', { ...settings, enableTruncate: false });
  t.equal(silent.truncated, false, 'enable_truncate off: Consul\'s silent trimming');
  t.equal(parseWire(silent.message).header.tc, 0);

  const ednsSrv = answer(query('big.service.consul', QTYPE.SRV, 1232), ctx(c));
  const edns = encodeForTransport(ednsSrv, 'udp', settings);
  t.ok(edns.message.length <= 1232, `${edns.message.length} bytes within the EDNS0 size`);
  t.ok(edns.answers > 8 && edns.answers < 40, `${edns.answers} answers: more than without EDNS0, fewer than all`);
  t.equal(edns.truncated, true);
  const ednsDecoded = parseWire(edns.message);
  t.equal(ednsDecoded.additionals.filter((r) => r.type === QTYPE.OPT).length, 1, 'the OPT record survives trimming');

  const big = encodeForTransport(answer(query('big.service.consul', QTYPE.SRV, 8192), ctx(c)), 'udp', settings);
  t.equal(big.answers, 40, 'a large enough EDNS0 size takes everything');
  t.equal(big.truncated, false);

  const tcp = encodeForTransport(srv, 'tcp', settings);
  t.equal(tcp.answers, 40);
  t.equal(parseWire(tcp.message).answers.length, 40);
});

t.test('a node or host name that is not a valid DNS name costs its own record, not the whole answer', async (t) => {
  // Regression: a 70-byte node name made every SRV answer for the service SERVFAIL ("label longer than 63 bytes").
  const c = new Catalog();
  const longNode = `n${'x'.repeat(69)}`;
  const longHost = `${'h'.repeat(64)}.example.com`;
  c.register(longNode, '10.4.0.1', { ID: 'svc', Service: 'svc', Port: 1 });
  c.register('good', '10.4.0.2', { ID: 'svc', Service: 'svc', Port: 2 });
  c.register('ext', '10.4.0.3', { ID: 'svc2', Service: 'svc2', Port: 3, Address: longHost });
  c.register('longhostnode', longHost);
  c.register(`s${'y'.repeat(69)}`, '10.4.0.9', { ID: 'consul', Service: 'consul', Port: 8300 });
  c.register('s1', '10.4.0.10', { ID: 'consul', Service: 'consul', Port: 8300 });
  const settings = dnsSettings({});
  const srv = answer(query('svc.service.consul', QTYPE.SRV), ctx(c));
  t.equal(srv.rcode, RCODE.NOERROR);
  t.same(srv.answers.map((r) => (r.type === 'SRV' ? [r.port, r.target] : [])), [[2, 'good.node.dc1.consul']]);
  t.same(srv.additionals, [{ type: 'A', name: 'good.node.dc1.consul', ttl: 0, address: '10.4.0.2' }]);
  t.same(parseWire(encodeForTransport(srv, 'udp', settings).message).answers.map((r) => r.target), ['good.node.dc1.consul'], 'and it encodes');
  t.same(sortedAddresses(answer(query('svc.service.consul', QTYPE.A), ctx(c)).answers), ['10.4.0.1', '10.4.0.2'], 'A answers do not depend on the node name');
  const ext = answer(query('svc2.service.consul', QTYPE.A), ctx(c));
  t.same([ext.rcode, ext.answers.length], [RCODE.NOERROR, 0], 'no CNAME to an unencodable host name');
  t.doesNotThrow(() => encodeForTransport(ext, 'udp', settings));
  t.same(answer(query('svc2.service.consul', QTYPE.SRV), ctx(c)).answers, []);
  t.same(answer(query('longhostnode.node.consul', QTYPE.A), ctx(c)).answers, []);
  const ns = answer(query('consul', QTYPE.NS), ctx(c));
  t.same(ns.answers.map((r) => (r.type === 'NS' ? r.target : '')), ['s1.node.dc1.consul'], 'an unencodable server name is not a name server');
  t.doesNotThrow(() => encodeForTransport(answer(query('consul', QTYPE.SOA), ctx(c)), 'udp', settings));
});

t.test('UDP fitting drops optional records (node metadata TXT, NS glue) before answers, and only cut answers set TC', async (t) => {
  // Regression: a node whose metadata TXT records did not fit in 512 bytes was answered with no A record and TC.
  const c = new Catalog();
  const meta: Record<string, string> = {};
  for (let i = 0; i < 12; i++) meta[`key${i}`] = 'v'.repeat(50);
  c.register('meta-node', '10.5.0.1', undefined, [], meta);
  const settings = dnsSettings({});
  const a = answer(query('meta-node.node.consul', QTYPE.A), ctx(c));
  t.equal(a.additionals.length, 12);
  const plain = encodeForTransport(a, 'udp', settings);
  t.equal(plain.truncated, false, 'no TC: every answer is there');
  t.ok(plain.message.length <= 512);
  const decoded = parseWire(plain.message);
  t.equal(decoded.header.tc, 0);
  t.same(decoded.answers.map((r) => r.address), ['10.5.0.1']);
  t.equal(decoded.additionals.length, 0, 'the metadata went');
  const large = parseWire(encodeForTransport(answer(query('meta-node.node.consul', QTYPE.A, 4096), ctx(c)), 'udp', settings).message);
  t.equal(large.additionals.filter((r) => r.type === QTYPE.TXT).length, 12, 'kept when the EDNS0 size allows');
  // A TXT question needs the metadata itself: cutting it is truncation.
  const txt = encodeForTransport(answer(query('meta-node.node.consul', QTYPE.TXT), ctx(c)), 'udp', settings);
  t.equal(txt.truncated, true);
  t.ok(txt.answers > 0 && txt.answers < 12, `${txt.answers} TXT answers fit`);
});

t.test('a service too large for one message: TCP gets what fits in 64 KiB, UDP is truncated, never SERVFAIL', async (t) => {
  // Regression: above about 1,800 SRV instances the full answer passed 128 KiB and encoding threw (SERVFAIL on both transports).
  const c = new Catalog();
  for (let i = 0; i < 3000; i++) c.register(`huge-node-${i}`, `10.${20 + (i >> 8)}.${i & 255}.1`, { ID: 'huge', Service: 'huge', Port: 1000 + i });
  const settings = dnsSettings({});
  const srv = answer(query('huge.service.consul', QTYPE.SRV, 4096), ctx(c));
  t.equal(srv.answers.length, 3000);
  const tcp = encodeForTransport(srv, 'tcp', settings);
  t.ok(tcp.message.length <= 65535, `${tcp.message.length} bytes over TCP`);
  t.ok(tcp.answers > 800 && tcp.answers < 3000, `${tcp.answers} SRV answers over TCP`);
  const decoded = parseWire(tcp.message);
  t.equal(decoded.answers.length, tcp.answers);
  t.equal(decoded.additionals.filter((r) => r.type === QTYPE.A).length, tcp.answers, 'each kept SRV answer with its address');
  const udp = encodeForTransport(srv, 'udp', settings);
  t.equal(udp.truncated, true);
  t.ok(udp.message.length <= 4096 && udp.answers > 0);
  const a = encodeForTransport(answer(query('huge.service.consul', QTYPE.A), ctx(c)), 'tcp', settings);
  t.equal(a.answers, 3000, 'A answers (16 bytes each) all fit');
});

t.test('the server view caches instance lists per service index: every change still shows at once', async (t) => {
  const c = new Catalog();
  c.register('n1', '10.3.0.1', { ID: 'web', Service: 'web', Port: 80 }, [check('web-check', 'passing', 'web')]);
  c.register('n2', '10.3.0.2', { ID: 'web', Service: 'web', Port: 81 });
  const first = c.view.serviceInstances('web');
  t.equal(c.view.serviceInstances('WEB'), first, 'the same list while nothing changed (any case)');
  const addresses = () => sortedAddresses(answer(query('web.service.consul', QTYPE.SRV), ctx(c)).additionals);
  t.same(addresses(), ['10.3.0.1', '10.3.0.2']);
  c.register('n2', '10.3.0.22');
  t.same(addresses(), ['10.3.0.1', '10.3.0.22'], 'a node address change');
  c.register('n1', '10.3.0.1', undefined, [check('serfHealth', 'critical')]);
  t.same(addresses(), ['10.3.0.22'], 'a node-level check turning critical');
  c.register('n2', '10.3.0.22', { ID: 'web', Service: 'web', Port: 81, Address: '192.168.3.2' });
  t.same(addresses(), ['192.168.3.2'], 'a service address');
  t.not(c.view.serviceInstances('web'), first);
  t.same(c.view.serviceInstances('nope'), []);
});

t.test('encoded answers decode with dns2 to the same records', async (t) => {
  const c = new Catalog();
  c.register('n1', '10.7.0.1', { ID: 's', Service: 's', Port: 53 }, [], { k: 'v' });
  c.register('n2', '2001:db8:0:0:1::2', { ID: 's', Service: 's', Port: 54 });
  const checkRoundTrip = (q: DnsQuery) => {
    const r = answer(q, ctx(c));
    const p = parseWire(encodeForTransport(r, 'tcp', dnsSettings({})).message);
    t.equal(p.header.id, 4242);
    t.equal(p.header.qr, 1);
    t.equal(p.header.aa, 1);
    t.equal(p.header.rd, 1);
    t.equal(p.header.rcode, r.rcode);
    t.equal(p.questions[0]!.name, q.question.name);
    t.same(
      p.answers.map((x) => x.name),
      r.answers.map((x) => x.name),
    );
    return p;
  };
  const srv = checkRoundTrip(query('s.service.consul', QTYPE.SRV));
  t.same(srv.answers.map((x) => x.port).sort(), [53, 54]);
  t.same(srv.additionals.map((x) => x.address).sort(), ['10.7.0.1', '2001:db8::1:0:0:2']);
  const soa = checkRoundTrip(query('nope.service.consul', QTYPE.A));
  t.match(soa.authorities[0], { type: QTYPE.SOA, primary: 'ns.consul', admin: 'hostmaster.consul', serial: NOW_SECONDS, refresh: 3600, retry: 600, expiration: 86400, minimum: 0 });
  const txt = checkRoundTrip(query('n1.node.consul', QTYPE.TXT));
  t.match(txt.answers[0], { type: QTYPE.TXT, data: ['k=v'] });
  t.equal(metaText(' a`b ', 'x`'), '` a``b` =x``');
});
