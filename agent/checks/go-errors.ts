// Node's socket and TLS errors rendered as the Go errors Consul puts in a check's Output
// ("dial tcp 127.0.0.1:80: connect: connection refused"), so tools and people reading outputs see
// what Consul would show. Only the common cases are translated; anything else keeps Node's message.
import { joinHostPort, parsePort, splitHostPort } from '../../lib/host-port.ts';

interface NodeNetError extends Error {
  readonly code?: string;
  readonly address?: string;
  readonly port?: number;
  readonly hostname?: string;
  readonly syscall?: string;
}

const TLS_UNKNOWN_AUTHORITY = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
]);

/**
 * The Go text of a failed dial, connection or TLS handshake to `target` ("host:port" as the
 * definition gave it; Go prints the resolved address, which Node's error carries when it has one).
 */
export function goNetErrorText(err: unknown, target: string): string {
  const e = err as NodeNetError;
  const addr = e.address !== undefined && e.port !== undefined ? joinHostPort(e.address, e.port) : target;
  switch (e.code) {
    case 'ECONNREFUSED':
      return `dial tcp ${addr}: connect: connection refused`;
    case 'EHOSTUNREACH':
      return `dial tcp ${addr}: connect: no route to host`;
    case 'ENETUNREACH':
      return `dial tcp ${addr}: connect: network is unreachable`;
    case 'ETIMEDOUT':
      return `dial tcp ${addr}: i/o timeout`;
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return `dial tcp: lookup ${e.hostname ?? target}: no such host`;
    case 'ECONNRESET':
      // "socket hang up": the peer closed before answering, which Go's client reports as EOF.
      return e.message === 'socket hang up' ? 'EOF' : `read tcp ${addr}: read: connection reset by peer`;
    case 'EPIPE':
      return `write tcp ${addr}: write: broken pipe`;
    case 'CERT_HAS_EXPIRED':
      return 'tls: failed to verify certificate: x509: certificate has expired or is not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `tls: failed to verify certificate: x509: ${e.message}`;
    default:
      if (e.code !== undefined && TLS_UNKNOWN_AUTHORITY.has(e.code)) return 'tls: failed to verify certificate: x509: certificate signed by unknown authority';
      return e.message ?? String(err);
  }
}

/** Go's url.Error prefix: `Get "http://x/": <err>` (urlErrorOp: the method with only its first letter upper). */
export function goUrlErrorText(method: string, url: string, inner: string): string {
  const op = method === '' ? 'Get' : method.slice(0, 1) + method.slice(1).toLowerCase();
  return `${op} ${JSON.stringify(url)}: ${inner}`;
}

/** What Go's TCP dialer reaches for "host:port" (net.SplitHostPort; an empty host is this machine), or its error text. */
export function tcpDialTarget(address: string): { host: string; port: number } | { error: string } {
  const split = splitHostPort(address);
  if (!split.ok) return { error: split.error };
  const port = parsePort(split.port);
  if (port === null) return { error: `address ${address}: invalid port` };
  return { host: split.host === '' ? 'localhost' : split.host, port };
}
