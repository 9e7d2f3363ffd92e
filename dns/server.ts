// The DNS interface's sockets: UDP and TCP on one port, answers from dns/resolve.ts, names
// outside the zone forwarded to the recursors. Used by `konsul server` and `konsul agent` alike;
// each brings its own catalog view (dns/catalog-view.ts). See dns/README.md.
//
// Bad input never throws out of here: a message too short for a header or that is a response is
// dropped; one that cannot be parsed, has other than one question or another opcode gets FORMERR or
// NOTIMP; an unexpected failure while answering gets SERVFAIL. TCP connections are bounded in
// number, buffered bytes and idle time.
import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { createServer, connect, isIP, type Server as TcpServer, type Socket as TcpSocket } from 'node:net';
import { viewLoadedWithin, type DnsCatalogView } from './catalog-view.ts';
import { splitRecursor, type DnsSettings } from './config.ts';
import { encodeForTransport, resolve, type Transport } from './resolve.ts';
import { decodeQuery, encodeResponse, rcodeOnlyResponse, RCODE, type DnsQuery } from './wire.ts';

export interface DnsListenAddress {
  readonly host: string;
  /** 0 = an ephemeral port (the same one for UDP and TCP). */
  readonly port: number;
}

export interface DnsServerOptions {
  readonly listen: DnsListenAddress;
  readonly settings: DnsSettings;
  readonly view: DnsCatalogView;
  readonly log?: (level: 'warn' | 'info' | 'debug', message: string) => void;
  /** Uniform in [0, 1) for shuffling answers; Math.random by default. */
  readonly random?: () => number;
  /** Milliseconds since the epoch (the SOA serial); Date.now by default. */
  readonly nowMs?: () => number;
  /** Most TCP connections open at once (further ones are closed at once). */
  readonly maxTcpConnections?: number;
  /** A TCP connection idle this long is closed (RFC 7766 suggests seconds, not minutes). */
  readonly tcpIdleTimeoutMs?: number;
  /**
   * A message whose first bytes have arrived must be complete this soon, however slowly the rest
   * trickles in (miekg/dns, Consul's library, allows 2 s): otherwise a client sending a byte now
   * and then would hold a connection slot forever, the idle timer being reset by every byte.
   */
  readonly tcpReadTimeoutMs?: number;
}

export interface RunningDnsServer {
  /** The bound address: UDP and TCP share it. */
  readonly address: { readonly host: string; readonly port: number };
  stop(): Promise<void>;
}

const DEFAULT_MAX_TCP_CONNECTIONS = 512;
const DEFAULT_TCP_IDLE_TIMEOUT_MS = 10_000;
const DEFAULT_TCP_READ_TIMEOUT_MS = 2_000;
/** How long a query waits for a view that is loading the name (resolvers give a server about 1 s before retrying). */
const VIEW_LOAD_WAIT_MS = 1000;
const VIEW_LOAD_ATTEMPTS = 3;
/** Forwarded queries waiting for an upstream at once; more are answered SERVFAIL. */
const MAX_PENDING_FORWARDS = 1024;
/** Queries one TCP connection may have waiting for their turn; a client that sends more without reading is cut off. */
const MAX_PIPELINED_QUERIES = 128;
/** Binding UDP then TCP to one ephemeral port can race another process: retry this many times. */
const BIND_ATTEMPTS = 8;

/** At most one warning per this period: a dead recursor or a buggy client must not flood the log. */
const WARN_EVERY_MS = 10_000;

export async function startDnsServer(options: DnsServerOptions): Promise<RunningDnsServer> {
  const rawLog = options.log ?? (() => undefined);
  let lastWarnMs = -Infinity;
  let suppressedWarnings = 0;
  const log: NonNullable<DnsServerOptions['log']> = (level, message) => {
    if (level !== 'warn') return rawLog(level, message);
    const now = performance.now();
    if (now - lastWarnMs < WARN_EVERY_MS) {
      suppressedWarnings++;
      return;
    }
    lastWarnMs = now;
    rawLog('warn', suppressedWarnings > 0 ? `${message} (and ${suppressedWarnings} more warnings in the last ${WARN_EVERY_MS / 1000} s)` : message);
    suppressedWarnings = 0;
  };
  const random = options.random ?? Math.random;
  const nowMs = options.nowMs ?? Date.now;
  const maxTcpConnections = options.maxTcpConnections ?? DEFAULT_MAX_TCP_CONNECTIONS;
  const idleTimeoutMs = options.tcpIdleTimeoutMs ?? DEFAULT_TCP_IDLE_TIMEOUT_MS;
  const readTimeoutMs = options.tcpReadTimeoutMs ?? DEFAULT_TCP_READ_TIMEOUT_MS;
  const forwarder = new Forwarder(options.settings, log);
  let stopped = false;

  const answer = async (message: Buffer, transport: Transport): Promise<Buffer | null> => {
    const decoded = decodeQuery(message);
    if (decoded.kind === 'drop') return null;
    if (decoded.kind === 'reject') {
      log('debug', `dns: ${RCODE_NAMES[decoded.rcode] ?? decoded.rcode} for a ${transport} query: ${decoded.reason}`);
      return encodeResponse(rcodeOnlyResponse(decoded.id, decoded.opcode, decoded.recursionDesired, decoded.rcode));
    }
    const query = decoded.query;
    try {
      // A view still loading a name (an agent's cache on its first query for it) is waited for,
      // briefly and a few times at most (a list, then the entry), rather than answered SERVFAIL.
      const loadDeadline = performance.now() + VIEW_LOAD_WAIT_MS;
      let resolution: ReturnType<typeof resolve>;
      for (let attempt = 1; ; attempt++) {
        try {
          resolution = resolve(query, { view: options.view, settings: options.settings, nowSeconds: Math.floor(nowMs() / 1000), random });
          break;
        } catch (err) {
          if (attempt >= VIEW_LOAD_ATTEMPTS || stopped || !(await viewLoadedWithin(err, loadDeadline - performance.now()))) throw err;
        }
      }
      if (resolution.kind === 'forward') return await forwarder.forward(message, query, transport);
      return encodeForTransport(resolution.response, transport, options.settings).message;
    } catch (err) {
      log('warn', `dns: answering ${query.question.name} type ${query.question.type} failed: ${(err as Error).message}`);
      return encodeResponse(rcodeOnlyResponse(query.id, 0, query.recursionDesired, RCODE.SERVFAIL, query.question));
    }
  };

  // Nothing above should throw, but a bug must cost one query, never the process.
  const safeAnswer = (message: Buffer, transport: Transport): Promise<Buffer | null> =>
    answer(message, transport).catch((err: unknown) => {
      log('warn', `dns: a ${transport} query was dropped: ${(err as Error).stack ?? String(err)}`);
      return null;
    });

  const { udp, tcp, port } = await bindBoth(options.listen);
  udp.on('message', (message: Buffer, peer: RemoteInfo) => {
    void safeAnswer(message, 'udp').then((reply) => {
      if (reply === null || stopped) return;
      udp.send(reply, peer.port, peer.address, (err) => {
        if (err) log('debug', `dns: reply to ${peer.address}:${peer.port} not sent: ${err.message}`);
      });
    });
  });
  udp.on('error', (err) => log('warn', `dns: udp socket: ${err.message}`));

  const connections = new Set<TcpSocket>();
  tcp.on('connection', (socket) => {
    if (connections.size >= maxTcpConnections || stopped) {
      socket.destroy();
      return;
    }
    connections.add(socket);
    socket.on('close', () => connections.delete(socket));
    serveTcpConnection(socket, { idleTimeoutMs, readTimeoutMs }, (message) => safeAnswer(message, 'tcp'), log);
  });
  tcp.on('error', (err) => log('warn', `dns: tcp listener: ${err.message}`));

  return {
    address: { host: options.listen.host, port },
    stop: async () => {
      if (stopped) return;
      stopped = true;
      forwarder.stop();
      for (const socket of connections) socket.destroy();
      await Promise.all([new Promise<void>((done) => udp.close(() => done())), new Promise<void>((done) => tcp.close(() => done()))]);
    },
  };
}

const RCODE_NAMES: Record<number, string> = { 1: 'FORMERR', 2: 'SERVFAIL', 4: 'NOTIMP', 5: 'REFUSED' };

/** UDP first (an ephemeral port when 0 is asked), then TCP on the same port. */
async function bindBoth(listen: DnsListenAddress): Promise<{ udp: UdpSocket; tcp: TcpServer; port: number }> {
  const family = isIP(listen.host) === 6 ? 'udp6' : 'udp4';
  let lastError: Error | null = null;
  for (let attempt = 0; attempt < (listen.port === 0 ? BIND_ATTEMPTS : 1); attempt++) {
    const udp = createSocket({ type: family, reuseAddr: false });
    try {
      await new Promise<void>((ok, fail) => {
        udp.once('error', fail);
        udp.bind(listen.port, listen.host, () => {
          udp.off('error', fail);
          ok();
        });
      });
    } catch (err) {
      udp.close();
      throw bindError(`udp ${listen.host}:${listen.port}`, err);
    }
    const port = udp.address().port;
    const tcp = createServer({ allowHalfOpen: true });
    try {
      await new Promise<void>((ok, fail) => {
        tcp.once('error', fail);
        tcp.listen({ host: listen.host, port, exclusive: true }, () => {
          tcp.off('error', fail);
          ok();
        });
      });
      return { udp, tcp, port };
    } catch (err) {
      lastError = err as Error;
      udp.close();
      tcp.close();
    }
  }
  throw bindError(`tcp ${listen.host}:${listen.port}`, lastError);
}

/** Keeps the errno code (EADDRINUSE, EACCES) so that callers can tell why. */
function bindError(where: string, err: unknown): Error {
  const code = (err as NodeJS.ErrnoException | null)?.code;
  return Object.assign(new Error(`cannot listen for DNS on ${where}: ${(err as Error | null)?.message ?? 'unknown error'}`), { code });
}

/**
 * RFC 1035 4.2.2 / RFC 7766: each message has a two-byte length prefix; queries may be pipelined
 * and are answered in order. A zero length or a half-closed connection with a partial message ends
 * the connection.
 */
function serveTcpConnection(
  socket: TcpSocket,
  timeouts: { readonly idleTimeoutMs: number; readonly readTimeoutMs: number },
  answer: (message: Buffer) => Promise<Buffer | null>,
  log: NonNullable<DnsServerOptions['log']>,
): void {
  let buffered: Buffer = Buffer.alloc(0);
  let chain: Promise<void> = Promise.resolve();
  let pending = 0;
  let peerEnded = false;
  // Set while a partial message is buffered: it must be complete before this fires.
  let readDeadline: NodeJS.Timeout | null = null;
  const clearReadDeadline = () => {
    if (readDeadline !== null) clearTimeout(readDeadline);
    readDeadline = null;
  };
  socket.setTimeout(timeouts.idleTimeoutMs, () => socket.destroy());
  socket.on('close', clearReadDeadline);
  socket.on('error', (err) => log('debug', `dns: tcp connection: ${err.message}`));
  const maybeEnd = () => {
    if (peerEnded && pending === 0 && !socket.destroyed) socket.end();
  };
  socket.on('data', (chunk: Buffer) => {
    buffered = buffered.length === 0 ? chunk : Buffer.concat([buffered, chunk]);
    while (buffered.length >= 2) {
      const length = buffered.readUInt16BE(0);
      if (length === 0) {
        socket.destroy();
        return;
      }
      if (buffered.length < 2 + length) break;
      const message = buffered.subarray(2, 2 + length);
      buffered = buffered.subarray(2 + length);
      // A complete message is progress: the deadline restarts for whatever follows it.
      clearReadDeadline();
      if (++pending > MAX_PIPELINED_QUERIES) {
        socket.destroy();
        return;
      }
      // Replies go out in the order the queries came, whatever each one waits for.
      const reply = answer(message);
      chain = chain.then(async () => {
        const bytes = await reply;
        pending--;
        if (bytes !== null && !socket.destroyed) {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(bytes.length);
          socket.write(Buffer.concat([prefix, bytes]));
        }
        maybeEnd();
      });
    }
    if (buffered.length > 0) readDeadline ??= setTimeout(() => socket.destroy(), timeouts.readTimeoutMs);
  });
  socket.on('end', () => {
    peerEnded = true;
    if (buffered.length > 0) socket.destroy();
    else maybeEnd();
  });
}

/**
 * Forwards a query outside the zone to the recursors, in the configured order (Consul's default
 * "sequential" strategy), over the transport the client used. The query's bytes go unchanged, so
 * the upstream sees the client's ID, flags and EDNS0 size; its reply comes back unchanged. A reply
 * other than NOERROR or NXDOMAIN, or none within recursor_timeout, moves on to the next recursor;
 * when every one fails the client gets SERVFAIL.
 */
class Forwarder {
  private readonly closers = new Set<() => void>();
  private stopped = false;

  constructor(
    private readonly settings: DnsSettings,
    private readonly log: NonNullable<DnsServerOptions['log']>,
  ) {}

  async forward(message: Buffer, query: DnsQuery, transport: Transport): Promise<Buffer> {
    const servfail = () => {
      const response = rcodeOnlyResponse(query.id, 0, query.recursionDesired, RCODE.SERVFAIL, query.question);
      return encodeResponse({ ...response, recursionAvailable: true });
    };
    if (this.closers.size >= MAX_PENDING_FORWARDS) return servfail();
    for (const recursor of this.settings.recursors) {
      if (this.stopped) break;
      const { host, port } = splitRecursor(recursor);
      try {
        const reply = transport === 'udp' ? await this.exchangeUdp(message, host, port) : await this.exchangeTcp(message, host, port);
        if (reply.length >= 12 && reply.readUInt16BE(0) === query.id && (reply[2]! & 0x80) !== 0) {
          const rcode = reply[3]! & 0x0f;
          if (rcode === RCODE.NOERROR || rcode === RCODE.NXDOMAIN) return reply;
          this.log('debug', `dns: recursor ${recursor} answered rcode ${rcode} for ${query.question.name}`);
        }
      } catch (err) {
        this.log('debug', `dns: recursor ${recursor} failed for ${query.question.name}: ${(err as Error).message}`);
      }
    }
    this.log('warn', `dns: every recursor failed for ${query.question.name}`);
    return servfail();
  }

  stop(): void {
    this.stopped = true;
    for (const close of [...this.closers]) close();
  }

  private exchangeUdp(message: Buffer, host: string, port: number): Promise<Buffer> {
    const socket = createSocket(isIP(host) === 6 ? 'udp6' : 'udp4');
    return this.upstreamExchange(
      () => socket.close(),
      (finish) => {
        socket.on('error', (err) => finish(err));
        socket.on('message', (reply, peer) => {
          // Only the recursor's reply to this query counts (anything else on the port is ignored).
          if (peer.port !== port || reply.length < 2 || reply.readUInt16BE(0) !== message.readUInt16BE(0)) return;
          finish(null, reply);
        });
        socket.send(message, port, host, (err) => {
          if (err) finish(err);
        });
      },
    );
  }

  private exchangeTcp(message: Buffer, host: string, port: number): Promise<Buffer> {
    const socket = connect({ host, port });
    let buffered: Buffer = Buffer.alloc(0);
    return this.upstreamExchange(
      () => socket.destroy(),
      (finish) => {
        socket.on('error', (err) => finish(err));
        socket.on('connect', () => {
          const prefix = Buffer.alloc(2);
          prefix.writeUInt16BE(message.length);
          socket.write(Buffer.concat([prefix, message]));
        });
        socket.on('data', (chunk: Buffer) => {
          buffered = Buffer.concat([buffered, chunk]);
          if (buffered.length >= 2 && buffered.length >= 2 + buffered.readUInt16BE(0)) finish(null, buffered.subarray(2, 2 + buffered.readUInt16BE(0)));
        });
        socket.on('end', () => finish(new Error('connection closed before a reply')));
      },
    );
  }

  /**
   * One exchange with a recursor: settles once — on the reply, an error, the recursor timeout or
   * stop() — and then releases its socket.
   */
  private upstreamExchange(releaseSocket: () => void, run: (finish: (err: Error | null, reply?: Buffer) => void) => void): Promise<Buffer> {
    return new Promise((resolveReply, reject) => {
      let done = false;
      const finish = (err: Error | null, reply?: Buffer) => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        this.closers.delete(close);
        releaseSocket();
        if (err) reject(err);
        else resolveReply(reply!);
      };
      const close = () => finish(new Error('server stopping'));
      this.closers.add(close);
      const timer = setTimeout(() => finish(new Error(`no reply within ${this.settings.recursorTimeoutMs} ms`)), this.settings.recursorTimeoutMs);
      run(finish);
    });
  }
}
