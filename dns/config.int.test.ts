// DNS settings from the config file and flags of a real server process: a custom domain,
// only_passing, node and service TTLs, Consul's silent trimming (enable_truncate off) and recursors.
// The upstream is a real DNS server (dns2's, started here on 127.0.0.1) behind a dead recursor,
// so forwarding, fail-over, NXDOMAIN pass-through and SERVFAIL are all exercised.
import { createSocket } from 'node:dgram';
import { Resolver } from 'node:dns/promises';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import dns2 from 'dns2';
import t from 'tap';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../test/kit/server-process.ts';
import { dig } from './test-support.ts';

interface Dns2Request {
  header: { id: number };
  questions: { name: string; type: number }[];
}
type Send = (response: unknown) => void;

let server: ServerProcess;
let port: number;
let upstreamPort: number;
let upstreamUdp: dns2.UDPServer;
let upstreamTcp: dns2.TCPServer;
const upstreamQueries: string[] = [];
const configDir = tempDataDir('konsul-dns-config-');

/** The upstream: www.example.com is 192.0.2.1 over UDP and 192.0.2.2 over TCP; broken.* is SERVFAIL. */
function upstreamHandler(transport: 'udp' | 'tcp') {
  return (request: Dns2Request, send: Send) => {
    const question = request.questions[0]!;
    upstreamQueries.push(`${transport} ${question.name}`);
    const response = dns2.Packet.createResponseFromRequest(request as never);
    response.header.ra = 1;
    if (question.name === 'www.example.com') {
      response.answers.push({ name: question.name, type: dns2.Packet.TYPE.A, class: dns2.Packet.CLASS.IN, ttl: 60, address: transport === 'udp' ? '192.0.2.1' : '192.0.2.2' } as never);
    } else if (question.name.startsWith('broken.')) {
      response.header.rcode = 2; // SERVFAIL
    } else {
      response.header.rcode = 3; // NXDOMAIN
    }
    send(response);
  };
}

/** A port with nothing listening (bound, then released). */
async function deadPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((ok) => socket.bind(0, '127.0.0.1', ok));
  const p = socket.address().port;
  await new Promise<void>((ok) => socket.close(() => ok()));
  return p;
}

async function put(path: string, body: unknown): Promise<void> {
  const res = await fetch(`${server.url}${path}`, { method: 'PUT', body: JSON.stringify(body) });
  if (res.status !== 200) throw new Error(`${path}: ${res.status} ${await res.text()}`);
}

t.before(async () => {
  upstreamUdp = dns2.createUDPServer(upstreamHandler('udp') as never);
  await upstreamUdp.listen(0, '127.0.0.1');
  upstreamPort = upstreamUdp.address().port;
  upstreamTcp = dns2.createTCPServer(upstreamHandler('tcp') as never);
  await new Promise<void>((ok) => upstreamTcp.listen(upstreamPort, '127.0.0.1', () => ok()));
  const configFile = join(configDir, 'dns.json');
  writeFileSync(
    configFile,
    JSON.stringify({
      domain: 'cluster.test.',
      recursors: [`127.0.0.1:${await deadPort()}`, `127.0.0.1:${upstreamPort}`],
      dns_config: {
        only_passing: true,
        node_ttl: '30s',
        service_ttl: { '*': '5s', web: '20s' },
        enable_truncate: false,
        udp_answer_limit: 2,
        recursor_timeout: '400ms',
        soa: { min_ttl: 15 },
      },
    }),
  );
  server = await startServer({ node: 'dns-config', extraArgs: ['--config', configFile] });
  port = server.dnsAddress!.port;
  for (let i = 1; i <= 6; i++) {
    await put('/v1/catalog/register', {
      Node: `n${i}`,
      Address: `10.3.0.${i}`,
      Service: { ID: 'web', Service: 'web', Port: 80 },
      Check: { CheckID: 'c', Name: 'c', Status: i === 6 ? 'warning' : 'passing', ServiceID: 'web' },
    });
  }
  await put('/v1/catalog/register', { Node: 'dbn', Address: '10.3.1.1', Service: { ID: 'db', Service: 'db', Port: 5432 } });
});

t.teardown(async () => {
  const code = server ? await server.stop() : 0;
  if (server) removeDir(server.dataDir);
  removeDir(configDir);
  upstreamUdp?.close();
  upstreamTcp?.close();
  if (code !== 0) throw new Error(`konsul exited with ${code}:\n${server.output()}`);
});

t.test('a custom domain; only_passing leaves out the warning instance; node and service TTLs', async (t) => {
  const web = await dig(port, ['+tcp', 'web.service.cluster.test', 'A']);
  t.equal(web.status, 'NOERROR');
  t.same(web.answer.map((r) => r[4]).sort(), ['10.3.0.1', '10.3.0.2', '10.3.0.3', '10.3.0.4', '10.3.0.5']);
  t.ok(web.answer.every((r) => r[1] === '20'), 'service_ttl "web"');
  t.ok(web.flags.includes('ra'), 'recursion available with recursors');
  const db = await dig(port, ['db.service.dc1.cluster.test', 'SRV']);
  t.same(db.answer, [['db.service.dc1.cluster.test.', '5', 'IN', 'SRV', '1', '1', '5432', 'dbn.node.dc1.cluster.test.']], 'service_ttl "*"');
  t.same(db.additional, [['dbn.node.dc1.cluster.test.', '5', 'IN', 'A', '10.3.1.1']]);
  const node = await dig(port, ['n2.node.cluster.test', 'A']);
  t.same(node.answer, [['n2.node.cluster.test.', '30', 'IN', 'A', '10.3.0.2']], 'node_ttl');
  const missing = await dig(port, ['nothing.service.cluster.test', 'A']);
  t.equal(missing.status, 'NXDOMAIN');
  t.match(missing.authority, [['cluster.test.', '15', 'IN', 'SOA', 'ns.cluster.test.', 'hostmaster.cluster.test.', /^\d+$/, '3600', '600', '86400', '15']]);
});

t.test('enable_truncate off: UDP answers are cut to udp_answer_limit without the TC bit', async (t) => {
  const r = await dig(port, ['+notcp', '+ignore', '+noedns', 'web.service.cluster.test', 'A']);
  t.equal(r.transport, 'UDP');
  t.notOk(r.flags.includes('tc'));
  t.equal(r.answer.length, 2);
});

t.test('names outside the domain go to the recursors, past a dead one, over the client\'s transport', async (t) => {
  upstreamQueries.length = 0;
  const udp = await dig(port, ['www.example.com', 'A']);
  t.equal(udp.status, 'NOERROR');
  t.same(udp.answer, [['www.example.com.', '60', 'IN', 'A', '192.0.2.1']], 'the upstream\'s UDP answer');
  const tcp = await dig(port, ['+tcp', 'www.example.com', 'A']);
  t.same(tcp.answer, [['www.example.com.', '60', 'IN', 'A', '192.0.2.2']], 'forwarded over TCP for a TCP client');
  t.same(upstreamQueries, ['udp www.example.com', 'tcp www.example.com']);
  const consul = await dig(port, ['web.service.consul', 'A']);
  t.equal(consul.status, 'NXDOMAIN', 'the default domain is just another outside name now: the upstream\'s NXDOMAIN');
  const broken = await dig(port, ['broken.example.com', 'A']);
  t.equal(broken.status, 'SERVFAIL', 'every recursor failed');
  t.ok(broken.flags.includes('ra'));
  const r = new Resolver({ timeout: 3000, tries: 1 });
  r.setServers([`127.0.0.1:${port}`]);
  t.same(await r.resolve4('www.example.com'), ['192.0.2.1']);
  t.same((await r.resolve4('web.service.cluster.test')).length, 2, 'c-ares without EDNS0 gets udp_answer_limit answers');
});

t.test('bad DNS settings stop the server with a clear message; --dns-addr off disables DNS', async (t) => {
  const badFile = join(configDir, 'bad.json');
  writeFileSync(badFile, JSON.stringify({ dns_config: { only_passin: true } }));
  await t.rejects(startServer({ node: 'bad-dns', extraArgs: ['--config', badFile], startTimeoutMs: 15_000 }), /unknown key "dns_config.only_passin"/);
  await t.rejects(startServer({ node: 'bad-dns', extraArgs: ['--dns-addr', 'nowhere'], startTimeoutMs: 15_000 }), /--dns-addr: expected HOST:PORT or "off"/);
  const dataDir = tempDataDir();
  const off = await startServer({ node: 'no-dns', dataDir, extraArgs: ['--dns-addr', 'off'] });
  t.equal(off.dnsAddress, null);
  t.notMatch(off.output(), /dns listening/);
  t.equal(await off.stop(), 0);
  removeDir(dataDir);
  // An explicit address that is taken is fatal (only the default port falls back to no DNS).
  const taken = await startServer({ node: 'taken-dns', extraArgs: ['--dns-addr', `127.0.0.1:${port}`], startTimeoutMs: 15_000 }).then(
    async (s) => {
      await s.stop();
      removeDir(s.dataDir);
      return 'started';
    },
    (err: Error) => err.message,
  );
  t.match(taken, /cannot listen for DNS on (udp|tcp) 127\.0\.0\.1:\d+/);
});
