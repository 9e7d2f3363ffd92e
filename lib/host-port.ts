// "host:port" addresses, the one copy Konsul has. Consul reads them with Go's net.SplitHostPort (IPv6
// hosts in brackets, "[::1]:8500"; an empty host means this machine) and writes them with
// net.JoinHostPort. Each caller keeps its own error text and its own default host; the rules of
// what an address is live here.
//
// Pure: no Node built-ins.

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export type SplitAddress = { readonly ok: true; readonly host: string; readonly port: string } | { readonly ok: false; readonly error: string };

/**
 * Go's net.SplitHostPort: "host:port", "[v6]:port", "[v6%zone]:port", ":port" (empty host). The port
 * is not checked (Go leaves that to the dialer, see parsePort). Errors carry Go's texts
 * (`address x: missing port in address`).
 */
export function splitHostPort(address: string): SplitAddress {
  const fail = (why: string): SplitAddress => ({ ok: false, error: `address ${address}: ${why}` });
  const lastColon = address.lastIndexOf(':');
  if (lastColon < 0) return fail('missing port in address');
  let host: string;
  // Where a '[' resp. ']' may no longer appear.
  let openFrom = 0;
  let closeFrom = 0;
  if (address.startsWith('[')) {
    const end = address.indexOf(']');
    if (end < 0) return fail("missing ']' in address");
    if (end + 1 === address.length) return fail('missing port in address');
    if (end + 1 !== lastColon) return fail(address[end + 1] === ':' ? 'too many colons in address' : 'missing port in address');
    host = address.slice(1, end);
    openFrom = 1;
    closeFrom = end + 1;
  } else {
    host = address.slice(0, lastColon);
    if (host.includes(':')) return fail('too many colons in address');
  }
  if (address.indexOf('[', openFrom) >= 0) return fail("unexpected '[' in address");
  if (address.indexOf(']', closeFrom) >= 0) return fail("unexpected ']' in address");
  return { ok: true, host, port: address.slice(lastColon + 1) };
}

/** A port number: 1 to 5 decimal digits, at most 65535 (0 included: "any port" for a listener). */
export function parsePort(text: string): number | null {
  if (!/^\d{1,5}$/.test(text)) return null;
  const port = Number(text);
  return port <= 65535 ? port : null;
}

/**
 * A "host:port" with a numeric port (splitHostPort, then parsePort), as Konsul's flags and config
 * files take it; the host may be empty (the caller picks the default). null when it is not one.
 */
export function parseAddress(address: string): HostPort | null {
  const split = splitHostPort(address);
  if (!split.ok) return null;
  const port = parsePort(split.port);
  return port === null ? null : { host: split.host, port };
}

/** Go's net.JoinHostPort: "host:port", an IPv6 host in brackets. */
export function joinHostPort(host: string, port: number | string): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The host and port of an address Konsul itself formatted (joinHostPort), for display and
 * lookups: never fails; the port is 0 when it is missing or not a port, brackets are removed.
 */
export function hostPortOf(address: string): HostPort {
  const split = splitHostPort(address);
  if (split.ok) return { host: split.host, port: parsePort(split.port) ?? 0 };
  return { host: address.startsWith('[') && address.endsWith(']') ? address.slice(1, -1) : address, port: 0 };
}
