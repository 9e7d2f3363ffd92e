// The real probe for each runnable check type.
import type { NormalizedCheck } from './definition.ts';
import { grpcProbe } from './grpc-probe.ts';
import { httpProbe } from './http-probe.ts';
import type { Probe } from './probe.ts';
import { scriptProbe } from './script-probe.ts';
import { tcpProbe } from './tcp-probe.ts';

export { grpcProbe, httpProbe, scriptProbe, tcpProbe };

/** The probe that runs `check`, or undefined for types that are not probed (TTL, alias, UDP, ...). */
export function defaultProbe(check: NormalizedCheck): Probe | undefined {
  const { http, tcp, grpc, scriptArgs } = check;
  switch (check.type) {
    case 'http':
      return http && ((ctx) => httpProbe(http, ctx));
    case 'tcp':
      return tcp && ((ctx) => tcpProbe(tcp, ctx));
    case 'grpc':
      return grpc && ((ctx) => grpcProbe(grpc, ctx));
    case 'script':
      return scriptArgs && ((ctx) => scriptProbe(scriptArgs, ctx));
    default:
      return undefined;
  }
}
