// Benchmark of the server-to-server transport over loopback, next to a minimal @grpc/grpc-js
// service carrying the same encoded bytes (the alternative considered in docs/adr/0006).
//
//   npx tsx bench/transport.bench.ts [--seconds 3] [--warmup 0.5] [--window-bytes 4194304]
//
// The sender runs in the main thread, the receiver in a worker thread (two cores, as two servers
// would have). Streams (one message per send() / per gRPC write, as one Ready per message):
//   (a) MsgApp with 1 entry of 100 B   (b) MsgApp with 16 entries of 100 B   (c) MsgApp with 1 entry of 4 KiB
// The sender keeps at most --window-bytes unacknowledged (the receiver reports its count every
// 256 messages), so nothing is dropped and queues stay bounded. Both sides encode and decode with
// raft/transport/codec.ts: the gRPC side carries exactly our frames as its messages.
// Requests: 100-byte echo, sequential (latency percentiles) and with 64 in flight (ops/s);
// gRPC uses a unary call.
//
// Prints tables and one JSON line (the only output line starting with '{').
import * as grpc from '@grpc/grpc-js';
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { Message } from '../raft/core/types.ts';
import { decodeFrame, encodeMessages } from '../raft/transport/codec.ts';
import { TcpTransport } from '../rpc/tcp-transport.ts';

const identity = (b: Buffer): Buffer => b;
const SERVICE = {
  stream: {
    path: '/konsul.bench.Transport/Stream',
    requestStream: true,
    responseStream: true,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
  echo: {
    path: '/konsul.bench.Transport/Echo',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
} satisfies grpc.ServiceDefinition;

const ACK_EVERY = 256;

type ToMain = { kind: 'ready'; konsul: string; grpc: string } | { kind: 'count'; count: number };

// ---------------------------------------------------------------------------------------------
// Receiver (worker thread): a TcpTransport and a gRPC server, counting every decoded message.
// ---------------------------------------------------------------------------------------------

async function receiver(): Promise<void> {
  const port = parentPort!;
  let count = 0;
  const counted = (): void => {
    count++;
    if (count % ACK_EVERY === 0) port.postMessage({ kind: 'count', count } satisfies ToMain);
  };
  // Messages that end a stream below a multiple of ACK_EVERY still get reported.
  const flush = setInterval(() => port.postMessage({ kind: 'count', count } satisfies ToMain), 20);
  flush.unref();

  const transport = new TcpTransport({
    nodeId: 'F',
    listen: { host: '127.0.0.1', port: 0 },
    resolve: () => undefined,
    onMessage: counted,
    onRequest: async (_from, _method, body) => body,
  });
  const bound = await transport.start();

  const server = new grpc.Server();
  server.addService(SERVICE, {
    stream: (call: grpc.ServerDuplexStream<Buffer, Buffer>) => {
      call.on('data', (buf: Buffer) => {
        decodeFrame(buf.subarray(4));
        counted();
      });
      call.on('end', () => call.end());
      call.on('error', () => {});
    },
    echo: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => callback(null, call.request),
  });
  const grpcPort = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));

  port.on('message', (msg: { kind: 'stop' }) => {
    if (msg.kind !== 'stop') return;
    clearInterval(flush);
    server.forceShutdown();
    void transport.stop().then(() => port.close());
  });
  port.postMessage({ kind: 'ready', konsul: `${bound.host}:${bound.port}`, grpc: `127.0.0.1:${grpcPort}` } satisfies ToMain);
}

// ---------------------------------------------------------------------------------------------
// Sender (main thread)
// ---------------------------------------------------------------------------------------------

interface Scenario {
  readonly name: string;
  readonly entries: number;
  readonly entryBytes: number;
}

const SCENARIOS: readonly Scenario[] = [
  { name: '(a) MsgApp 1 × 100 B', entries: 1, entryBytes: 100 },
  { name: '(b) MsgApp 16 × 100 B', entries: 16, entryBytes: 100 },
  { name: '(c) MsgApp 1 × 4 KiB', entries: 1, entryBytes: 4096 },
];

interface StreamResult {
  scenario: string;
  transport: 'konsul' | 'grpc';
  frameBytes: number;
  messages: number;
  messagesPerSec: number;
  megabytesPerSec: number;
}

interface RequestResult {
  transport: 'konsul' | 'grpc';
  sequentialP50Us: number;
  sequentialP99Us: number;
  sequentialOps: number;
  inFlight64OpsPerSec: number;
}

function makeApp(s: Scenario, index: number): Message {
  const entries = Array.from({ length: s.entries }, (_, i) => ({
    type: 'normal' as const,
    index: index + 1 + i,
    term: 3,
    data: new Uint8Array(s.entryBytes).fill(i),
  }));
  return { type: 'app', from: 'L', to: 'F', term: 3, index, logTerm: 3, commit: index, entries };
}

class Acks {
  count = 0;
  private waiters: (() => void)[] = [];

  constructor(worker: Worker) {
    worker.on('message', (msg: ToMain) => {
      if (msg.kind !== 'count' || msg.count <= this.count) return;
      this.count = msg.count;
      const waiters = this.waiters;
      this.waiters = [];
      for (const w of waiters) w();
    });
  }

  next(): Promise<void> {
    return new Promise((r) => this.waiters.push(r));
  }
}

/** Sends one message per call to `sendOne` for `seconds`, keeping at most windowBytes unacknowledged. */
async function stream(
  acks: Acks,
  frameBytes: number,
  windowBytes: number,
  seconds: number,
  sendOne: (i: number) => boolean,
  waitDrain: () => Promise<void>,
): Promise<{ messages: number; elapsedS: number }> {
  const window = Math.max(ACK_EVERY * 2, Math.floor(windowBytes / frameBytes));
  const base = acks.count;
  let sent = 0;
  const t0 = performance.now();
  const deadline = t0 + seconds * 1000;
  while (performance.now() < deadline) {
    while (sent - (acks.count - base) < window) {
      const ok = sendOne(sent++);
      if (!ok) await waitDrain();
      if (sent % 64 === 0 && performance.now() >= deadline) break;
    }
    if (sent - (acks.count - base) >= window) await acks.next();
  }
  // Wait for everything sent to arrive, so runs do not overlap.
  while (acks.count - base < sent) await acks.next();
  return { messages: sent, elapsedS: (performance.now() - t0) / 1000 };
}

async function runStreams(worker: Worker, acks: Acks, addrs: { konsul: string; grpc: string }, seconds: number, warmup: number, windowBytes: number): Promise<StreamResult[]> {
  const sender = new TcpTransport({
    nodeId: 'L',
    listen: { host: '127.0.0.1', port: 0 },
    resolve: () => addrs.konsul,
    onMessage: () => {},
    onRequest: async () => new Uint8Array(0),
    maxQueueBytesPerPeer: 4 * windowBytes,
  });
  await sender.start();
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Transport');
  const client = new Client(addrs.grpc, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    stream(): grpc.ClientDuplexStream<Buffer, Buffer>;
  };
  const call = client.stream();
  call.on('error', () => {});
  const results: StreamResult[] = [];
  try {
    for (const s of SCENARIOS) {
      const msg = makeApp(s, 1000);
      const frameBytes = encodeMessages([msg]).length;
      const konsulOne = (): boolean => {
        sender.send([msg]);
        return true;
      };
      const grpcOne = (): boolean => call.write(encodeMessages([msg]));
      const noDrain = async (): Promise<void> => {};
      const grpcDrain = (): Promise<void> => new Promise((r) => call.once('drain', () => r()));
      for (const [name, sendOne, drain] of [['konsul', konsulOne, noDrain], ['grpc', grpcOne, grpcDrain]] as const) {
        await stream(acks, frameBytes, windowBytes, warmup, sendOne, drain);
        const r = await stream(acks, frameBytes, windowBytes, seconds, sendOne, drain);
        const perSec = r.messages / r.elapsedS;
        results.push({
          scenario: s.name,
          transport: name,
          frameBytes,
          messages: r.messages,
          messagesPerSec: Math.round(perSec),
          megabytesPerSec: Number(((perSec * frameBytes) / 1e6).toFixed(1)),
        });
        process.stdout.write(`  ${s.name} ${name}: ${Math.round(perSec).toLocaleString('en-US')} msg/s\n`);
      }
    }
  } finally {
    call.end();
    client.close();
    await sender.stop();
  }
  return results;
}

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))]!;
}

async function measureRequests(name: 'konsul' | 'grpc', once: () => Promise<unknown>, seconds: number, warmup: number): Promise<RequestResult> {
  const until = async (ms: number, record: ((us: number) => void) | null): Promise<void> => {
    const deadline = performance.now() + ms;
    while (performance.now() < deadline) {
      const t0 = performance.now();
      await once();
      record?.((performance.now() - t0) * 1000);
    }
  };
  await until(warmup * 1000, null);
  const latencies: number[] = [];
  await until(seconds * 1000, (us) => latencies.push(us));
  latencies.sort((a, b) => a - b);
  // 64 concurrent loops.
  await Promise.all(Array.from({ length: 64 }, () => until(warmup * 1000, null)));
  let done = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: 64 }, () => until(seconds * 1000, () => done++)));
  const elapsed = (performance.now() - t0) / 1000;
  const r: RequestResult = {
    transport: name,
    sequentialP50Us: Math.round(percentile(latencies, 50)),
    sequentialP99Us: Math.round(percentile(latencies, 99)),
    sequentialOps: latencies.length,
    inFlight64OpsPerSec: Math.round(done / elapsed),
  };
  process.stdout.write(`  requests ${name}: p50 ${r.sequentialP50Us} µs, p99 ${r.sequentialP99Us} µs, 64 in flight ${r.inFlight64OpsPerSec.toLocaleString('en-US')}/s\n`);
  return r;
}

async function runRequests(addrs: { konsul: string; grpc: string }, seconds: number, warmup: number): Promise<RequestResult[]> {
  const body = new Uint8Array(100).fill(7);
  const sender = new TcpTransport({
    nodeId: 'C',
    listen: { host: '127.0.0.1', port: 0 },
    resolve: () => undefined,
    onMessage: () => {},
    onRequest: async () => new Uint8Array(0),
  });
  await sender.start();
  const Client = grpc.makeGenericClientConstructor(SERVICE, 'Transport');
  const client = new Client(addrs.grpc, grpc.credentials.createInsecure()) as unknown as grpc.Client & {
    echo(req: Buffer, cb: (err: grpc.ServiceError | null, res?: Buffer) => void): void;
  };
  const buf = Buffer.from(body);
  try {
    const konsul = await measureRequests('konsul', () => sender.request(addrs.konsul, 'echo', body), seconds, warmup);
    const viaGrpc = await measureRequests('grpc', () => new Promise<void>((resolve, reject) =>
      client.echo(buf, (err) => (err ? reject(err) : resolve()))), seconds, warmup);
    return [konsul, viaGrpc];
  } finally {
    client.close();
    await sender.stop();
  }
}

function table(header: string[], rows: string[][]): void {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w, i) => (i === 0 ? '-'.repeat(w + 2) : `${'-'.repeat(w + 1)}:`)).join('|')}|`);
  for (const row of rows) console.log(line(row));
}

function positive(name: string, text: string): number {
  const x = Number(text);
  if (!(x > 0)) throw new Error(`--${name} needs a positive number, got '${text}'`);
  return x;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string', default: '3' },
      warmup: { type: 'string', default: '0.5' },
      'window-bytes': { type: 'string', default: String(4 * 1024 * 1024) },
      'request-seconds': { type: 'string', default: '1.5' },
    },
  });
  const seconds = positive('seconds', values.seconds);
  const warmup = positive('warmup', values.warmup);
  const windowBytes = positive('window-bytes', values['window-bytes']);
  const requestSeconds = positive('request-seconds', values['request-seconds']);
  console.log(`Transport over loopback: Konsul TcpTransport vs @grpc/grpc-js, ${seconds} s per stream, ${requestSeconds} s per request mode`);
  console.log(`Node ${process.version}, ${cpus().length} CPUs, load average ${loadavg()[0]!.toFixed(2)}; receiver in a worker thread`);

  // tsx's loader is registered per thread: the worker registers it, then loads this file.
  const bootstrap = `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))})
    .then((tsx) => { tsx.register(); return import(${JSON.stringify(import.meta.url)}); })`;
  const worker = new Worker(bootstrap, { eval: true, workerData: { role: 'receiver' } });
  worker.on('error', (err) => {
    console.error('receiver failed:', err);
    process.exit(1);
  });
  const acks = new Acks(worker);
  const addrs = await new Promise<{ konsul: string; grpc: string }>((resolve) => {
    const onReady = (msg: ToMain): void => {
      if (msg.kind !== 'ready') return;
      worker.off('message', onReady);
      resolve({ konsul: msg.konsul, grpc: msg.grpc });
    };
    worker.on('message', onReady);
  });
  let streams: StreamResult[];
  let requests: RequestResult[];
  try {
    streams = await runStreams(worker, acks, addrs, seconds, warmup, windowBytes);
    requests = await runRequests(addrs, requestSeconds, warmup);
  } finally {
    worker.postMessage({ kind: 'stop' });
    await new Promise<void>((r) => {
      const timer = setTimeout(() => void worker.terminate().then(() => r()), 2000);
      worker.once('exit', () => {
        clearTimeout(timer);
        r();
      });
    });
  }

  console.log('');
  const rows = SCENARIOS.map((s) => {
    const k = streams.find((r) => r.scenario === s.name && r.transport === 'konsul')!;
    const g = streams.find((r) => r.scenario === s.name && r.transport === 'grpc')!;
    return [
      s.name,
      String(k.frameBytes),
      k.messagesPerSec.toLocaleString('en-US'),
      k.megabytesPerSec.toFixed(1),
      g.messagesPerSec.toLocaleString('en-US'),
      g.megabytesPerSec.toFixed(1),
      (k.messagesPerSec / g.messagesPerSec).toFixed(2),
    ];
  });
  table(['stream (one message per write)', 'frame B', 'konsul msg/s', 'konsul MB/s', 'grpc msg/s', 'grpc MB/s', 'konsul/grpc'], rows);
  console.log('');
  const [k, g] = requests as [RequestResult, RequestResult];
  table(['100 B echo request', 'konsul', 'grpc (unary)'], [
    ['sequential p50 µs', String(k.sequentialP50Us), String(g.sequentialP50Us)],
    ['sequential p99 µs', String(k.sequentialP99Us), String(g.sequentialP99Us)],
    ['64 in flight ops/s', k.inFlight64OpsPerSec.toLocaleString('en-US'), g.inFlight64OpsPerSec.toLocaleString('en-US')],
  ]);
  console.log('');
  console.log(JSON.stringify({
    bench: 'transport',
    date: new Date().toISOString(),
    node: process.version,
    cpus: cpus().length,
    loadAverage1m: Number(loadavg()[0]!.toFixed(2)),
    seconds,
    requestSeconds,
    windowBytes,
    streams,
    requests,
  }));
}

if (isMainThread) {
  main().catch((err: unknown) => {
    console.error(err);
    process.exit(1);
  });
} else if ((workerData as { role?: string } | null)?.role === 'receiver') {
  void receiver();
}
