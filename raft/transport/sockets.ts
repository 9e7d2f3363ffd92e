// TCP and mutual-TLS sockets of the server transport (docs/adr/0006-server-rpc-transport.md): the
// listener, outbound dials, addresses, and the frame-memory rule. Shared by the Raft transport
// (raft-transport.ts) and the RPC of rpc/, which run over the same connections and framing.
import { isIP } from 'node:net';
import net from 'node:net';
import tls from 'node:tls';
import * as hostPort from '../../lib/host-port.ts';
import { payloadHoldsBytes } from './codec.ts';
import { TransportError } from './errors.ts';

export interface TcpTlsOptions {
  readonly cert: string | Buffer;
  readonly key: string | Buffer;
  /** The only CA peers' certificates (client and server) are verified against. */
  readonly ca: string | Buffer;
}

export const KEEPALIVE_DELAY_MS = 10_000;
/** Socket errors that only mean "the peer is down": reported through onUnreachable, not onError. */
export const QUIET_SOCKET_ERRORS = new Set(['ECONNREFUSED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT', 'EHOSTUNREACH', 'ENETUNREACH', 'ECONNABORTED']);

/** A peer's "host:port" / "[v6]:port" to dial: a host and a port from 1 up. */
export function parseAddress(address: string): hostPort.HostPort {
  const parsed = hostPort.parseAddress(address);
  if (parsed === null || parsed.host === '' || parsed.port < 1) throw new TransportError('unreachable', `invalid address '${address}' (want host:port)`);
  return parsed;
}

export function formatAddress(host: string, port: number): string {
  return hostPort.joinHostPort(host, port);
}

function isSpecificIp(host: string): boolean {
  return isIP(host) !== 0 && host !== '0.0.0.0' && host !== '::' && host !== '::0';
}

export function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

/** Errors worth a log line: everything but a peer being down. */
export function isQuietSocketError(err: Error): boolean {
  return QUIET_SOCKET_ERRORS.has((err as NodeJS.ErrnoException).code ?? '');
}

/**
 * The payload itself when decoding it keeps no views, else a copy in memory of its own (not a
 * pooled slab): a retained log entry must not pin a whole socket read buffer.
 */
export function own(payload: Buffer): Buffer {
  if (!payloadHoldsBytes(payload)) return payload;
  const copy = Buffer.allocUnsafeSlow(payload.length);
  payload.copy(copy);
  return copy;
}

export interface ListenerHooks {
  /** A connection ready for frames (for TLS: handshaken, with a verified client certificate). */
  accept(socket: net.Socket): void;
  /** Refused TLS clients, listener errors. */
  reportError(err: Error): void;
}

/** A listening server and the raw sockets it accepted (TLS handshakes in progress included). */
export interface Listener {
  readonly server: net.Server;
  readonly accepted: Set<net.Socket>;
  readonly bound: { host: string; port: number };
}

/** Listens on `host:port` (port 0: ephemeral), plain TCP or mutual TLS. */
export async function listen(address: { readonly host: string; readonly port: number }, tlsOptions: TcpTlsOptions | undefined, handshakeTimeoutMs: number, hooks: ListenerHooks): Promise<Listener> {
  const t = tlsOptions;
  const accepted = new Set<net.Socket>();
  const server = t
    ? tls.createServer({
      cert: t.cert,
      key: t.key,
      ca: t.ca,
      requestCert: true,
      // Checked in 'secureConnection' instead, before reading a byte, so the reason can be reported.
      rejectUnauthorized: false,
      handshakeTimeout: handshakeTimeoutMs,
    })
    : net.createServer();
  server.on('connection', (socket: net.Socket) => {
    accepted.add(socket);
    socket.once('close', () => accepted.delete(socket));
    // A TLS server handles errors on the raw socket itself; a plain one leaves it to us.
    if (!t) hooks.accept(socket);
  });
  if (t) {
    server.on('secureConnection', (socket: tls.TLSSocket) => {
      if (socket.authorized) {
        hooks.accept(socket);
        return;
      }
      hooks.reportError(new Error(`refused a TLS client from ${socket.remoteAddress}: ${String(socket.authorizationError)}`));
      socket.destroy();
    });
    server.on('tlsClientError', (err: Error) => hooks.reportError(err));
  }
  server.on('error', (err: Error) => hooks.reportError(err));
  await new Promise<void>((resolve, reject) => {
    const onError = (err: Error): void => reject(err);
    server.once('error', onError);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', onError);
      resolve();
    });
  });
  const addr = server.address() as net.AddressInfo;
  return { server, accepted, bound: { host: addr.address, port: addr.port } };
}

/** Sets the options every connection of the transport has, both ways. */
export function tuneSocket(socket: net.Socket): void {
  socket.setNoDelay(true);
  socket.setKeepAlive(true, KEEPALIVE_DELAY_MS);
}

/**
 * Dials `host:port`. When `sourceHost` is a specific IP, the socket binds it as its source address:
 * peers (and the test harness's fault proxy) can then tell servers apart by source IP, as they would
 * on separate hosts.
 */
export function dial(host: string, port: number, sourceHost: string | undefined, tlsOptions: TcpTlsOptions | undefined): net.Socket {
  const options: net.TcpNetConnectOpts = { host, port };
  const targetFamily = isIP(host);
  if (sourceHost !== undefined && isSpecificIp(sourceHost) && (targetFamily === 0 || targetFamily === isIP(sourceHost))) {
    options.localAddress = sourceHost;
    if (targetFamily === 0) options.family = isIP(sourceHost);
  }
  const t = tlsOptions;
  const socket = t
    // Only the CA chain is checked, not the host name: servers are addressed by IP and the
    // certificate says who may join the cluster, not where it lives.
    ? tls.connect({ ...options, cert: t.cert, key: t.key, ca: t.ca, rejectUnauthorized: true, checkServerIdentity: () => undefined })
    : net.connect(options);
  tuneSocket(socket);
  return socket;
}
