// Check definitions: Consul's field spellings, defaults, durations and error texts; the output
// limits; the hand-written grpc.health.v1 codec.
import t from 'tap';
import { parseCheckDefinition, validateCheckDefinition, type NormalizedCheck } from './definition.ts';
import { decodeHealthCheckResponse, encodeHealthCheckRequest, servingStatusName } from './grpc-health-codec.ts';
import { tcpDialTarget } from './go-errors.ts';
import { TailBuffer, truncateHead } from './output.ts';

function ok(raw: unknown, options = {}): NormalizedCheck {
  const result = parseCheckDefinition(raw, options);
  if (!result.ok) throw new Error(`refused: ${result.error.message}`);
  return result.check;
}

function refusal(raw: unknown, options = {}): [number, string] | null {
  const err = validateCheckDefinition(raw, options);
  return err === null ? null : [err.httpStatus, err.message];
}

t.test('an HTTP check with every field, in Consul spelling', async (t) => {
  const check = ok({
    ID: 'api-health',
    Name: 'API',
    ServiceID: 'api1',
    Notes: 'n',
    Status: 'passing',
    HTTP: 'https://127.0.0.1:8443/health',
    Method: 'POST',
    Header: { 'X-Token': ['a', 'b'] },
    Body: '{"x":1}',
    TLSSkipVerify: true,
    TLSServerName: 'api.internal',
    Interval: '1m30s',
    Timeout: '500ms',
    SuccessBeforePassing: 2,
    FailuresBeforeCritical: 3,
    DeregisterCriticalServiceAfter: '10m',
    OutputMaxSize: 1024,
  });
  t.match(check, {
    checkId: 'api-health',
    name: 'API',
    serviceId: 'api1',
    notes: 'n',
    status: 'passing',
    type: 'http',
    intervalMs: 90_000,
    timeoutMs: 500,
    ttlMs: 0,
    successBeforePassing: 2,
    failuresBeforeWarning: 3,
    failuresBeforeCritical: 3,
    deregisterCriticalServiceAfterMs: 600_000,
    outputMaxSize: 1024,
  });
  t.same(check.http, {
    url: 'https://127.0.0.1:8443/health',
    method: 'POST',
    header: { 'X-Token': ['a', 'b'] },
    body: '{"x":1}',
    disableRedirects: false,
    tlsSkipVerify: true,
    tlsServerName: 'api.internal',
  });
});

t.test('snake_case and lower-case fields, nanosecond durations, ScriptArgs', async (t) => {
  const check = ok(
    { name: 'mem', args: ['/bin/check', '-x'], interval: 2_000_000_000, timeout: '1.5s', success_before_passing: 3, failures_before_warning: 1, failures_before_critical: 2 },
    { enableScriptChecks: true },
  );
  t.match(check, { checkId: 'mem', type: 'script', intervalMs: 2000, timeoutMs: 1500, successBeforePassing: 3, failuresBeforeWarning: 1, failuresBeforeCritical: 2 });
  t.same(check.scriptArgs, ['/bin/check', '-x']);
  t.same(ok({ Name: 's', ScriptArgs: ['true'], Interval: '1s' }, { enableScriptChecks: true }).scriptArgs, ['true']);
  t.same(ok({ name: 'g', grpc: '127.0.0.1:9000/pkg.Svc', grpc_use_tls: true, tls_skip_verify: true, interval: '5s' }).grpc, {
    target: '127.0.0.1:9000/pkg.Svc',
    address: '127.0.0.1:9000',
    service: 'pkg.Svc',
    useTls: true,
    tlsSkipVerify: true,
    tlsServerName: '',
  });
  t.same(ok({ Name: 't', TCP: 'localhost:22', Interval: '10s' }).tcp, { address: 'localhost:22', useTls: false, tlsSkipVerify: false, tlsServerName: '' });
  t.match(ok({ Name: 'ttl', TTL: '30s' }), { type: 'ttl', ttlMs: 30_000, status: undefined, intervalMs: 0 });
});

t.test('type precedence follows Consul (grpc, http, ttl, tcp, ...)', async (t) => {
  t.equal(ok({ Name: 'x', GRPC: 'a:1', HTTP: 'http://a/', Interval: '1s' }).type, 'grpc');
  t.equal(ok({ Name: 'x', HTTP: 'http://a/', TCP: 'a:1', Interval: '1s' }).type, 'http');
  t.equal(ok({ Name: 'x', AliasNode: 'n1' }).type, 'alias');
  t.equal(ok({ Name: 'x', H2PING: 'a:1', Interval: '1s' }).type, 'h2ping');
});

t.test('service checks get Consul default IDs and names', async (t) => {
  t.match(ok({ TTL: '10s' }, { service: { id: 'web1', name: 'web' } }), { checkId: 'service:web1', name: "Service 'web' check", serviceId: 'web1' });
  t.match(ok({ TTL: '10s' }, { service: { id: 'web1', name: 'web', index: 1, count: 3 } }), { checkId: 'service:web1:2' });
  t.match(ok({ CheckID: 'mine', TTL: '10s' }, { service: { id: 'web1', name: 'web', index: 1, count: 3 } }), { checkId: 'mine' });
});

t.test('refusals carry Consul texts and statuses', async (t) => {
  t.same(refusal({ TTL: '10s' }), [400, 'Missing check name']);
  t.same(refusal({ Name: 'x', TTL: '10s', Status: 'up' }), [400, 'Bad check status']);
  t.same(refusal({ TTL: '10s', Status: 'up' }, { service: { id: 's', name: 's' } }), [400, "Status for checks must 'passing', 'warning', 'critical'"]);
  t.same(refusal({ Name: 'x', HTTP: 'http://a/' }), [400, 'Invalid check: Interval must be > 0 for Script, HTTP, H2PING, TCP, UDP or OSService checks']);
  t.same(refusal({ Name: 'x', TTL: '10s', Interval: '10s' }), [400, 'Invalid check: Interval and TTL cannot both be specified']);
  t.same(refusal({ Name: 'x' }), [400, 'Invalid check: TTL must be > 0 for TTL checks']);
  t.same(refusal({ Name: 'x', AliasService: 'web', TTL: '1s' }), [400, 'Invalid check: TTL must be not be set for Alias checks']);
  t.same(refusal({ Name: 'x', AliasService: 'web', TCP: 'a:1', Interval: '1s' }), [400, 'Invalid check: Interval cannot be set for Alias checks']);
  t.same(refusal({ Name: 'x', TTL: '1s', OutputMaxSize: -1 }), [400, 'Invalid check: MaxOutputMaxSize must be positive']);
  t.same(refusal({ Name: 'x', TTL: '1s', FailuresBeforeWarning: 3, FailuresBeforeCritical: 2 }), [400, "Invalid check: FailuresBeforeWarning can't be higher than FailuresBeforeCritical"]);
  t.same(refusal({ Name: 'x', Args: ['true'], Interval: '1s' }), [500, "Scripts are disabled on this agent; to enable, configure 'enable_script_checks' or 'enable_local_script_checks' to true"]);
  t.same(refusal({ Name: 'x', TTL: '10 s' }), [400, 'Request decode failed: time: unknown unit " s" in duration "10 s"']);
  t.same(refusal({ Name: 'x', TTL: '10' }), [400, 'Request decode failed: time: missing unit in duration "10"']);
  t.same(refusal({ Name: 'x', TTL: true }), [400, 'Request decode failed: TTL: time: invalid duration true']);
  t.same(refusal({ Name: 'x', HTTP: 'http://a/', Interval: '1s', Header: { A: 'b' } }), [400, 'Request decode failed: Header.A must be a list of strings']);
  t.same(refusal({ Name: 'x', TTL: '1s', SuccessBeforePassing: 1.5 }), [400, 'Request decode failed: SuccessBeforePassing must be an integer']);
  t.same(refusal('nope'), [400, 'Request decode failed: check definition must be a JSON object']);
  t.equal(refusal({ Name: 'x', Args: ['true'], Interval: '1s' }, { enableScriptChecks: true }), null);
});

t.test('truncateHead: Consul TTL truncation, counted in bytes', async (t) => {
  t.equal(truncateHead('short', 10), 'short');
  t.equal(truncateHead('0123456789', 10), '0123456789');
  t.equal(truncateHead('0123456789X', 10), '0123456789 ... (captured 10 of 11 bytes)');
});

t.test('TailBuffer keeps the last bytes and counts all of them', async (t) => {
  const b = new TailBuffer(8);
  b.write('abc');
  t.equal(b.textWithCaptureNote(), 'abc');
  b.write('defgh');
  t.equal(b.text(), 'abcdefgh');
  b.write('ij');
  t.equal(b.text(), 'cdefghij');
  b.write('0123456789');
  t.equal(b.text(), '23456789');
  t.equal(b.totalWritten(), 20);
  t.equal(b.textWithCaptureNote(), 'Captured 8 of 20 bytes\n...\n23456789');
  const big = new TailBuffer(4096);
  for (let i = 0; i < 100; i++) big.write(Buffer.alloc(1000, i % 10 === 0 ? 'x' : 'y'));
  t.equal(big.text().length, 4096);
  t.equal(big.totalWritten(), 100_000);
});

t.test('grpc.health.v1 codec', async (t) => {
  t.same([...encodeHealthCheckRequest('')], [], 'proto3 omits an empty string');
  t.same([...encodeHealthCheckRequest('a.B')], [0x0a, 3, 0x61, 0x2e, 0x42]);
  const long = encodeHealthCheckRequest('s'.repeat(200));
  t.same([...long.subarray(0, 3)], [0x0a, 0xc8, 0x01], 'length as a two-byte varint');
  t.equal(long.length, 203);
  t.equal(decodeHealthCheckResponse(Buffer.from([0x08, 0x01])), 1);
  t.equal(decodeHealthCheckResponse(Buffer.from([])), 0, 'absent status is UNKNOWN');
  t.equal(decodeHealthCheckResponse(Buffer.from([0x12, 0x02, 0x68, 0x69, 0x08, 0x02, 0x1d, 1, 2, 3, 4])), 2, 'unknown fields are skipped');
  t.equal(decodeHealthCheckResponse(Buffer.from([0x08, 0x01, 0x08, 0x03])), 3, 'the last occurrence wins');
  t.throws(() => decodeHealthCheckResponse(Buffer.from([0x08])), /truncated/);
  t.throws(() => decodeHealthCheckResponse(Buffer.from([0x12, 0x05, 0x01])), /truncated/);
  t.same([0, 1, 2, 3, 7].map(servingStatusName), ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN', '7']);
});

t.test('tcpDialTarget follows Go', async (t) => {
  t.same(tcpDialTarget('127.0.0.1:80'), { host: '127.0.0.1', port: 80 });
  t.same(tcpDialTarget('[::1]:443'), { host: '::1', port: 443 });
  t.same(tcpDialTarget(':8080'), { host: 'localhost', port: 8080 });
  t.same(tcpDialTarget('example.com'), { error: 'address example.com: missing port in address' });
  t.same(tcpDialTarget('::1:80'), { error: 'address ::1:80: too many colons in address' });
  t.same(tcpDialTarget('h:99999'), { error: 'address h:99999: invalid port' });
});
