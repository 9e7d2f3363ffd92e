// A stand-in for `konsul server` in cluster mode, for testing the harness itself (harness.int.test.ts):
// it takes the same flags, prints the same lines, binds its RPC listener and the source address of
// its outbound connections to --rpc-addr's host, and dials its --retry-join peers every 100 ms.
// "Leader" is the smallest node name among itself and the peers it heard from in the last second,
// so peers agree while connected and an isolated server names itself.
import { appendFileSync } from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import { join } from 'node:path';

function flags(argv: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) continue;
    const v = argv[i + 1] ?? '';
    // Repeated flags accumulate; single-valued ones take the last value, as commander does.
    out.set(a.slice(2), [...(out.get(a.slice(2)) ?? []), v]);
    i++;
  }
  return out;
}

function hostPort(text: string): { host: string; port: number } {
  const i = text.lastIndexOf(':');
  return { host: text.slice(0, i), port: Number(text.slice(i + 1)) };
}

const f = flags(process.argv.slice(3)); // node fake-server.ts server ...
const name = f.get('node')!.at(-1)!;
const dataDir = f.get('data-dir')!.at(-1)!;
const httpAddr = hostPort(f.get('http-addr')!.at(-1)!);
const rpcAddr = hostPort(f.get('rpc-addr')!.at(-1)!);
const advertise = f.get('rpc-advertise')!.at(-1)!;
const peers = f.get('retry-join') ?? [];

appendFileSync(join(dataDir, 'starts'), `${process.pid}\n`);

/** name → { advertise, lastHeardMs, fromIp } */
const heard = new Map<string, { advertise: string; lastMs: number; fromIp: string }>();

const rpc = net.createServer((socket) => {
  socket.on('error', () => {});
  let buf = '';
  socket.on('data', (d: Buffer) => {
    buf += d.toString();
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const [, peer, peerAdvertise] = buf.slice(0, nl).split(' ');
      buf = buf.slice(nl + 1);
      if (peer && peerAdvertise) heard.set(peer, { advertise: peerAdvertise, lastMs: Date.now(), fromIp: socket.remoteAddress ?? '' });
      socket.write(`hi ${name} ${advertise}\n`);
    }
  });
});

const outbound = new Map<string, net.Socket>();
function dialPeers(): void {
  for (const p of peers) {
    let s = outbound.get(p);
    if (s === undefined || s.destroyed) {
      const { host, port } = hostPort(p);
      s = net.connect({ host, port, localAddress: rpcAddr.host });
      s.on('error', () => {});
      let buf = '';
      s.on('data', (d: Buffer) => {
        buf += d.toString();
        let nl: number;
        while ((nl = buf.indexOf('\n')) >= 0) {
          const [, peer, peerAdvertise] = buf.slice(0, nl).split(' ');
          buf = buf.slice(nl + 1);
          if (peer && peerAdvertise) heard.set(peer, { advertise: peerAdvertise, lastMs: Date.now(), fromIp: '' });
        }
      });
      outbound.set(p, s);
    }
    if (!s.connecting && s.writable) s.write(`hello ${name} ${advertise}\n`);
    else if (s.connecting) s.once('connect', () => s!.write(`hello ${name} ${advertise}\n`));
  }
}

function recentPeers(): [string, { advertise: string; lastMs: number; fromIp: string }][] {
  return [...heard.entries()].filter(([, v]) => Date.now() - v.lastMs < 1000);
}

const api = http.createServer((req, res) => {
  if (req.url === '/v1/status/leader') {
    const candidates = [[name, advertise] as const, ...recentPeers().map(([n, v]) => [n, v.advertise] as const)].sort((a, b) => a[0].localeCompare(b[0]));
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(candidates[0]![1]));
    return;
  }
  if (req.url === '/v1/fake/peers') {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(Object.fromEntries(recentPeers().map(([n, v]) => [n, v.fromIp]))));
    return;
  }
  res.statusCode = 404;
  res.end();
});

const fail = (err: Error): never => {
  process.stderr.write(`konsul: cannot start: ${err.message}\n`);
  process.exit(1);
};
rpc.on('error', fail);
api.on('error', fail);
rpc.listen(rpcAddr.port, rpcAddr.host, () => {
  const a = rpc.address() as net.AddressInfo;
  process.stdout.write(`konsul: rpc listening on ${a.address}:${a.port}\n`);
  api.listen(httpAddr.port, httpAddr.host, () => {
    const h = api.address() as net.AddressInfo;
    process.stdout.write(`konsul server "${name}" (datacenter dc1) listening on http://${h.address}:${h.port}, data in ${dataDir}\n`);
    setInterval(dialPeers, 100);
  });
});
process.on('SIGTERM', () => {
  process.stdout.write('konsul: SIGTERM received, shutting down gracefully\n');
  process.exit(0);
});
