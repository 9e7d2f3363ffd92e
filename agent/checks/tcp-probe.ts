// The TCP check (Consul's CheckTCP.check): a connection that opens is passing ("TCP connect
// <addr>: Success"); with TCPUseTLS the TLS handshake must complete too ("TCP+TLS connect ...").
// A refused, unreachable or timed-out dial is critical with Go's error text.
import net from 'node:net';
import tls from 'node:tls';
import type { TcpCheckTarget } from './definition.ts';
import { goNetErrorText, tcpDialTarget } from './go-errors.ts';
import { timedOut, type ProbeContext, type ProbeResult } from './probe.ts';

export function tcpProbe(target: TcpCheckTarget, ctx: ProbeContext): Promise<ProbeResult> {
  const address = target.address;
  const split = tcpDialTarget(address);
  if ('error' in split) return Promise.resolve({ status: 'critical', output: `dial tcp: ${split.error}` });
  const label = target.useTls ? 'TCP+TLS' : 'TCP';
  return new Promise((resolve) => {
    let finished = false;
    const finish = (result: ProbeResult) => {
      if (finished) return;
      finished = true;
      ctx.signal.removeEventListener('abort', onAbort);
      socket.destroy();
      resolve(result);
    };
    const socket = target.useTls
      ? tls.connect({
          host: split.host,
          port: split.port,
          rejectUnauthorized: !target.tlsSkipVerify,
          ...(target.tlsServerName !== '' ? { servername: target.tlsServerName } : net.isIP(split.host) === 0 ? { servername: split.host } : {}),
          ...(ctx.tlsCa !== undefined ? { ca: ctx.tlsCa } : {}),
        })
      : net.connect({ host: split.host, port: split.port });
    socket.once(target.useTls ? 'secureConnect' : 'connect', () => finish({ status: 'passing', output: `${label} connect ${address}: Success` }));
    socket.once('error', (err) => finish({ status: 'critical', output: goNetErrorText(err, address) }));
    let connected = false;
    socket.once('connect', () => {
      connected = true;
    });
    const onAbort = () => {
      // Go: a dial past the dialer's timeout is an i/o timeout; a TLS handshake past it is tls's own error.
      const output = !timedOut(ctx.signal) ? `dial tcp ${address}: operation was canceled` : connected && target.useTls ? 'tls: DialWithDialer timed out' : `dial tcp ${address}: i/o timeout`;
      finish({ status: 'critical', output });
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}
