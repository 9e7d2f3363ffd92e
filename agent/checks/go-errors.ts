// Node's socket and TLS errors rendered as the Go errors Consul puts in a check's Output
// ("dial tcp 127.0.0.1:80: connect: connection refused"), so tools and people reading outputs see
// what Consul would show. Only the common cases are translated; anything else keeps Node's message.

interface NodeNetError extends Error {
  readonly code?: string;
  readonly address?: string;
  readonly port?: number;
  readonly hostname?: string;
  readonly syscall?: string;
}

function hostPort(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
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
  const addr = e.address !== undefined && e.port !== undefined ? hostPort(e.address, e.port) : target;
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

/** Splits "host:port" / "[v6]:port" as Go's net.SplitHostPort, with its error text. */
export function splitHostPort(address: string): { host: string; port: number } | { error: string } {
  const missing = { error: `address ${address}: missing port in address` };
  let host: string;
  let portText: string;
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end < 0) return { error: `address ${address}: missing ']' in address` };
    host = address.slice(1, end);
    if (address[end + 1] !== ':') return missing;
    portText = address.slice(end + 2);
  } else {
    const colon = address.lastIndexOf(':');
    if (colon < 0) return missing;
    host = address.slice(0, colon);
    if (host.includes(':')) return { error: `address ${address}: too many colons in address` };
    portText = address.slice(colon + 1);
  }
  const port = Number(portText);
  if (portText === '' || !Number.isInteger(port) || port < 0 || port > 65535) return { error: `address ${address}: invalid port` };
  return { host: host === '' ? 'localhost' : host, port };
}
