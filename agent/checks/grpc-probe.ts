// The gRPC check (Consul's GrpcHealthProbe): grpc.health.v1.Health/Check on "host:port[/service]",
// plaintext or TLS (GRPCUseTLS, with TLSSkipVerify and TLSServerName), a new channel per probe
// closed afterwards. SERVING is passing ("gRPC check <target>: success"); any other status is
// critical ("gRPC <target> serving status: NOT_SERVING"), and so is an RPC error, printed as
// grpc-go prints a status error ("rpc error: code = Unavailable desc = ...").
import { Client, credentials, Metadata, status as grpcStatus, type ServiceError } from '@grpc/grpc-js';
import type { GrpcCheckTarget } from './definition.ts';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, HEALTH_CHECK_METHOD, servingStatusName } from './grpc-health-codec.ts';
import { timedOut, type ProbeContext, type ProbeResult } from './probe.ts';

/** Go's codes.Code String() names, by number. */
const GO_CODE_NAMES = [
  'OK',
  'Canceled',
  'Unknown',
  'InvalidArgument',
  'DeadlineExceeded',
  'NotFound',
  'AlreadyExists',
  'PermissionDenied',
  'ResourceExhausted',
  'FailedPrecondition',
  'Aborted',
  'OutOfRange',
  'Unimplemented',
  'Internal',
  'Unavailable',
  'DataLoss',
  'Unauthenticated',
];

function rpcErrorText(code: number, desc: string): string {
  return `rpc error: code = ${GO_CODE_NAMES[code] ?? `Code(${code})`} desc = ${desc}`;
}

export function grpcProbe(target: GrpcCheckTarget, ctx: ProbeContext): Promise<ProbeResult> {
  const channelCredentials = target.useTls
    ? credentials.createSsl(ctx.tlsCa === undefined ? null : Buffer.from(ctx.tlsCa), null, null, { rejectUnauthorized: !target.tlsSkipVerify })
    : credentials.createInsecure();
  const channelOptions: Record<string, string | number> = { 'grpc.max_receive_message_length': 64 * 1024 };
  if (target.useTls && target.tlsServerName !== '') channelOptions['grpc.ssl_target_name_override'] = target.tlsServerName;
  let client: Client;
  try {
    client = new Client(target.address, channelCredentials, channelOptions);
  } catch (err) {
    return Promise.resolve({ status: 'critical', output: (err as Error).message });
  }
  return new Promise((resolve) => {
    let finished = false;
    const finish = (result: ProbeResult) => {
      if (finished) return;
      finished = true;
      ctx.signal.removeEventListener('abort', onAbort);
      client.close();
      resolve(result);
    };
    const call = client.makeUnaryRequest<string, number>(
      HEALTH_CHECK_METHOD,
      encodeHealthCheckRequest,
      decodeHealthCheckResponse,
      target.service,
      new Metadata(),
      { deadline: Date.now() + ctx.timeoutMs },
      (err: ServiceError | null, value?: number) => {
        if (err) {
          const desc = err.code === grpcStatus.DEADLINE_EXCEEDED ? 'context deadline exceeded' : err.details;
          finish({ status: 'critical', output: rpcErrorText(err.code, desc) });
        } else if (value === 1) {
          finish({ status: 'passing', output: `gRPC check ${target.target}: success` });
        } else {
          finish({ status: 'critical', output: `gRPC ${target.target} serving status: ${servingStatusName(value ?? 0)}` });
        }
      },
    );
    const onAbort = () => {
      call.cancel();
      const output = timedOut(ctx.signal) ? rpcErrorText(grpcStatus.DEADLINE_EXCEEDED, 'context deadline exceeded') : rpcErrorText(grpcStatus.CANCELLED, 'context canceled');
      finish({ status: 'critical', output });
    };
    if (ctx.signal.aborted) onAbort();
    else ctx.signal.addEventListener('abort', onAbort, { once: true });
  });
}
