// The DNS interface of a real `konsul server --dev` process, queried by resolvers nobody here wrote:
// `dig` (BIND's) and Node's dns.Resolver (c-ares). Services are registered through the real HTTP
// API, with checks in every state. Default settings: warning instances included, TC on trimming.
import { Resolver } from 'node:dns/promises';
import t from 'tap';
import { removeDir, startServer, type ServerProcess } from '../test/kit/server-process.ts';
import { dig } from './test-support.ts';

let server: ServerProcess;
let port: number;

async function put(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${server.url}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
}

function resolver(): Resolver {
  const r = new Resolver({ timeout: 2000, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  return r;
}

const field = (records: readonly string[][], i: number) => records.map((r) => r[i]!);

t.before(async () => {
  server = await startServer({ node: 'dns-int' });
  if (server.dnsAddress === null) throw new Error(`no "dns listening on" line:\n${server.output()}`);
  port = server.dnsAddress.port;
  // "web": ten instances on ten nodes (10.0.1.1-10), tags by parity; 9 has a warning check, 10 a critical one.
  for (let i = 1; i <= 10; i++) {
    const status = i === 9 ? 'warning' : i === 10 ? 'critical' : 'passing';
    await put('/v1/catalog/register', {
      Node: `web-node-${i}`,
      Address: `10.0.1.${i}`,
      NodeMeta: { rack: `r${i}` },
      Service: { ID: 'web', Service: 'web', Port: 8000 + i, Tags: i % 2 ? ['odd'] : ['even'] },
      Check: { CheckID: 'web-health', Name: 'web health', Status: status, ServiceID: 'web' },
    });
  }
  // "api" on the server's own node through the agent API, with a passing TTL check.
  await put('/v1/agent/service/register', { Name: 'api', ID: 'api-1', Port: 9090, Tags: ['v1'], Check: { CheckID: 'api-ttl', TTL: '300s', Status: 'passing' } });
  // "ext": an instance with a service address (SRV target under .addr.).
  await put('/v1/catalog/register', { Node: 'ext-node', Address: '10.0.2.1', Service: { ID: 'ext', Service: 'ext', Address: '192.168.7.7', Port: 443 } });
});

t.teardown(async () => {
  if (!server) return;
  const code = await server.stop();
  removeDir(server.dataDir);
  if (code !== 0) throw new Error(`konsul exited with ${code}:\n${server.output()}`);
});

t.test('the server prints its DNS address before the ready line', async (t) => {
  const out = server.output();
  t.match(out, /konsul: dns listening on 127\.0\.0\.1:\d+ \(udp\+tcp\)/);
  t.ok(out.indexOf('dns listening on') < out.indexOf('listening on http://'));
  t.not(port, 8600, 'a dev server takes an ephemeral port');
});

t.test('dig SRV: every healthy instance with port and target, A records in the additional section', async (t) => {
  const r = await dig(port, ['web.service.consul', 'SRV']);
  t.equal(r.status, 'NOERROR');
  t.ok(r.flags.includes('aa'), 'authoritative');
  t.notOk(r.flags.includes('ra'), 'no recursion without recursors');
  t.equal(r.answer.length, 9, 'nine: the critical instance is left out, the warning one kept');
  for (const rec of r.answer) {
    t.match(rec, ['web.service.consul.', '0', 'IN', 'SRV', '1', '1', /^80\d\d$/, /^web-node-\d+\.node\.dc1\.consul\.$/]);
    const n = Number(/web-node-(\d+)/.exec(rec[7]!)![1]);
    t.equal(rec[6], String(8000 + n), `port of ${rec[7]}`);
    t.same(
      r.additional.filter((a) => a[0] === rec[7]),
      [[rec[7], '0', 'IN', 'A', `10.0.1.${n}`]],
      `A record for ${rec[7]}`,
    );
  }
  t.notOk(field(r.answer, 7).includes('web-node-10.node.dc1.consul.'), 'critical never');
});

t.test('dig A over TCP: all nine addresses; tag filter; RFC 2782; datacenter label; ANY', async (t) => {
  const all = await dig(port, ['+tcp', 'web.service.consul', 'A']);
  t.equal(all.transport, 'TCP');
  t.same(field(all.answer, 4).sort(), [1, 2, 3, 4, 5, 6, 7, 8, 9].map((i) => `10.0.1.${i}`).sort());
  const odd = await dig(port, ['+tcp', 'odd.web.service.consul', 'A']);
  t.same(field(odd.answer, 4).sort(), ['10.0.1.1', '10.0.1.3', '10.0.1.5', '10.0.1.7', '10.0.1.9']);
  const rfc = await dig(port, ['_web._even.service.consul', 'SRV']);
  t.same(field(rfc.answer, 6).sort(), ['8002', '8004', '8006', '8008']);
  const dc = await dig(port, ['+tcp', 'web.service.dc1.consul', 'A']);
  t.equal(dc.answer.length, 9);
  const otherDc = await dig(port, ['web.service.dc9.consul', 'A']);
  t.equal(otherDc.status, 'NXDOMAIN');
  const any = await dig(port, ['+tcp', 'web.service.consul', 'ANY']);
  t.equal(any.answer.length, 9);
  t.ok(any.answer.every((rec) => rec[3] === 'A'));
});

t.test('an agent-registered service and its node; node lookups', async (t) => {
  const api = await dig(port, ['api.service.consul', 'SRV']);
  t.same(api.answer, [['api.service.consul.', '0', 'IN', 'SRV', '1', '1', '9090', 'dns-int.node.dc1.consul.']]);
  t.same(api.additional, [['dns-int.node.dc1.consul.', '0', 'IN', 'A', '127.0.0.1']]);
  const node = await dig(port, ['web-node-3.node.consul', 'A']);
  t.same(node.answer, [['web-node-3.node.consul.', '0', 'IN', 'A', '10.0.1.3']]);
  t.same(node.additional, [['web-node-3.node.consul.', '0', 'IN', 'TXT', '"rack=r3"']], 'node metadata as TXT');
  const txt = await dig(port, ['web-node-3.node.dc1.consul', 'TXT']);
  t.same(txt.answer, [['web-node-3.node.dc1.consul.', '0', 'IN', 'TXT', '"rack=r3"']]);
  const ext = await dig(port, ['ext.service.consul', 'SRV']);
  t.same(ext.answer, [['ext.service.consul.', '0', 'IN', 'SRV', '1', '1', '443', 'c0a80707.addr.dc1.consul.']]);
  t.same(ext.additional, [['c0a80707.addr.dc1.consul.', '0', 'IN', 'A', '192.168.7.7']]);
  const addr = await dig(port, ['c0a80707.addr.dc1.consul', 'A']);
  t.same(field(addr.answer, 4), ['192.168.7.7']);
});

t.test('NXDOMAIN with the SOA; NODATA; SOA and NS queries', async (t) => {
  const missing = await dig(port, ['nothing.service.consul', 'A']);
  t.equal(missing.status, 'NXDOMAIN');
  t.equal(missing.answer.length, 0);
  t.match(missing.authority, [['consul.', '0', 'IN', 'SOA', 'ns.consul.', 'hostmaster.consul.', /^\d+$/, '3600', '600', '86400', '0']]);
  const noNode = await dig(port, ['nobody.node.consul', 'A']);
  t.equal(noNode.status, 'NXDOMAIN');
  const noData = await dig(port, ['web.service.consul', 'AAAA']);
  t.equal(noData.status, 'NOERROR');
  t.equal(noData.answer.length, 0);
  t.equal(noData.authority[0]?.[3], 'SOA');
  const soa = await dig(port, ['consul', 'SOA']);
  t.equal(soa.status, 'NOERROR');
  t.equal(soa.answer[0]?.[3], 'SOA');
  t.same(soa.authority, [['consul.', '0', 'IN', 'NS', 'dns-int.node.dc1.consul.']], 'the server itself is the name server');
  t.same(soa.additional, [['dns-int.node.dc1.consul.', '0', 'IN', 'A', '127.0.0.1']]);
  const ns = await dig(port, ['consul', 'NS']);
  t.same(ns.answer, [['consul.', '0', 'IN', 'NS', 'dns-int.node.dc1.consul.']]);
});

t.test('UDP truncation: TC without EDNS0 or with a small EDNS0 size; TCP and a large EDNS0 size get everything', async (t) => {
  const plain = await dig(port, ['+notcp', '+ignore', '+noedns', 'web.service.consul', 'A']);
  t.equal(plain.transport, 'UDP');
  t.ok(plain.flags.includes('tc'), 'TC bit');
  t.equal(plain.answer.length, 3, 'udp_answer_limit (default 3) without EDNS0');
  const retried = await dig(port, ['+noedns', 'web.service.consul', 'A']);
  t.equal(retried.answer.length, 9, 'dig retries over TCP on TC and gets every answer');
  const small = await dig(port, ['+notcp', '+ignore', '+bufsize=600', 'web.service.consul', 'SRV']);
  t.ok(small.flags.includes('tc'));
  t.ok(small.answer.length > 0 && small.answer.length < 9, `${small.answer.length} SRV answers fit 600 bytes`);
  t.equal(small.additional.length, small.answer.length, 'additional records only for the SRV records kept');
  const large = await dig(port, ['+notcp', '+ignore', '+bufsize=4096', 'web.service.consul', 'SRV']);
  t.notOk(large.flags.includes('tc'));
  t.equal(large.answer.length, 9);
  const tcp = await dig(port, ['+tcp', '+noedns', 'web.service.consul', 'SRV']);
  t.notOk(tcp.flags.includes('tc'));
  t.equal(tcp.answer.length, 9);
  t.equal(tcp.additional.length, 9);
});

t.test('other zones are REFUSED without recursors; other opcodes NOTIMP; AXFR NOTIMP', async (t) => {
  const other = await dig(port, ['www.example.com', 'A']);
  t.equal(other.status, 'REFUSED');
  const status = await dig(port, ['+opcode=2', 'web.service.consul', 'A']);
  t.equal(status.status, 'NOTIMP');
  const update = await dig(port, ['+opcode=5', 'web.service.consul', 'A']);
  t.equal(update.status, 'NOTIMP');
  const axfr = await dig(port, ['consul', 'AXFR']);
  t.match(axfr.raw, /Transfer failed|NOTIMP/);
});

t.test("Node's dns.Resolver (c-ares): SRV, A, SOA, NS, ANY and the error codes", async (t) => {
  const r = resolver();
  const srv = await r.resolveSrv('web.service.consul');
  t.equal(srv.length, 9);
  t.ok(srv.every((s) => s.priority === 1 && s.weight === 1 && /^web-node-\d+\.node\.dc1\.consul$/.test(s.name) && s.port === 8000 + Number(/\d+/.exec(s.name)![0])));
  t.same((await r.resolve4('odd.web.service.consul')).sort(), ['10.0.1.1', '10.0.1.3', '10.0.1.5', '10.0.1.7', '10.0.1.9']);
  t.same(await r.resolve4('web-node-2.node.consul'), ['10.0.1.2']);
  t.match(await r.resolveSoa('consul'), { nsname: 'ns.consul', hostmaster: 'hostmaster.consul', refresh: 3600, retry: 600, expire: 86400, minttl: 0 });
  t.same(await r.resolveNs('consul'), ['dns-int.node.dc1.consul']);
  const any = await r.resolveAny('web-node-4.node.consul');
  t.same(any.map((x) => x.type).sort(), ['A', 'TXT']);
  await t.rejects(r.resolve4('nothing.service.consul'), { code: 'ENOTFOUND' });
  await t.rejects(r.resolve6('web.service.consul'), { code: 'ENODATA' });
  await t.rejects(r.resolve4('www.example.com'), { code: 'EREFUSED' });
});

t.test('answers are shuffled between queries', async (t) => {
  const firsts = new Set<string>();
  for (let i = 0; i < 25 && firsts.size < 3; i++) firsts.add((await dig(port, ['+tcp', 'web.service.consul', 'A'])).answer[0]![4]!);
  t.ok(firsts.size >= 3, `first answers seen: ${[...firsts].join(', ')}`);
});

t.test('health changes show at once: a passing instance turning critical disappears', async (t) => {
  await put('/v1/catalog/register', { Node: 'web-node-1', Address: '10.0.1.1', Check: { CheckID: 'web-health', Name: 'web health', Status: 'critical', ServiceID: 'web' } });
  const after = await dig(port, ['+tcp', 'web.service.consul', 'A']);
  t.equal(after.answer.length, 8);
  t.notOk(field(after.answer, 4).includes('10.0.1.1'));
});
