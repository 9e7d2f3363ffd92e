// The platform both processes share: one error handler over the status table, one not-found
// handler, the raw-body plugin's 413s, the shared query-string schemas, and the shared agent routes.
import { request as httpRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import t, { type Test } from 'tap';
import { KonsulError, type KonsulErrorCode } from '../lib/errors.ts';
import { ProposalError, ReadIndexError } from '../raft/host/raft-host.ts';
import { createHttpApp } from './app.ts';
import { consulBodyTooLarge, rawBody } from './raw-body.ts';
import { agentSelfRoutes, type AgentSelf } from './routes/agent.ts';
import { readQuery } from './schemas.ts';
import { codeOfStatus, errorReply, STATUS_OF_CODE } from './status.ts';

t.test('the status table covers every code, and statuses map back to codes', async (t) => {
  const expected: Record<KonsulErrorCode, number> = {
    badRequest: 400,
    forbidden: 403,
    notFound: 404,
    methodNotAllowed: 405,
    conflict: 409,
    tooLarge: 413,
    tooManyRequests: 429,
    internal: 500,
    noLeader: 500,
    unreachable: 502,
    unavailable: 503,
    timeout: 504,
  };
  t.same(STATUS_OF_CODE, expected);
  t.equal(codeOfStatus(500), 'internal');
  t.equal(codeOfStatus(404), 'notFound');
  t.equal(codeOfStatus(418), 'internal', 'a status outside the table is a 500');
});

t.test("Raft's errors answer Consul's statuses and texts by themselves", async (t) => {
  const cases: [unknown, number, string][] = [
    [new ProposalError('notLeader', 'x'), 500, 'No cluster leader'],
    [new ProposalError('notLeader', 'x', 'n2'), 500, 'not the leader; the leader is n2'],
    [new ProposalError('leadershipLost', 'x'), 500, 'leadership lost while committing log'],
    [new ProposalError('overwritten', 'x'), 500, 'leadership lost while committing log: the write was discarded'],
    [new ProposalError('outcomeUnknown', 'lost contact with the leader'), 500, 'lost contact with the leader'],
    [new ProposalError('transferInProgress', 'x'), 500, 'leadership transfer in progress'],
    [new ProposalError('stopped', 'x'), 503, 'server is shutting down'],
    [new ReadIndexError('noLeader', 'x'), 500, 'No cluster leader'],
    [new ReadIndexError('stopped', 'x'), 503, 'server is shutting down'],
    [new ReadIndexError('timeout', 'timed out confirming leadership'), 500, 'timed out confirming leadership'],
    [Object.assign(new Error('Unsupported Media Type'), { statusCode: 415 }), 415, 'Unsupported Media Type'],
    [new Error('boom'), 500, 'boom'],
  ];
  for (const [err, status, text] of cases) {
    const reply = errorReply(err);
    t.same([reply.status, reply.text], [status, text], String(err));
  }
  t.equal(errorReply(new Error('boom')).expected, false, 'an unclassified error is logged with its stack');
});

async function platform(t: Test) {
  const shutdown = new AbortController();
  const counters = { requests: 0 };
  const app = createHttpApp({ shutdownSignal: shutdown.signal, counters });
  const self: AgentSelf = {
    datacenter: 'dc1',
    nodeName: 'n1',
    version: '1.2.3',
    server: true,
    memberAddress: () => ({ addr: '127.0.0.1', port: 8300 }),
    stats: () => ({ raft: { state: 'Leader' } }),
    members: async () => [
      { name: 'n1', addr: '127.0.0.1', port: 8300, server: true, failed: false },
      { name: 'c1', addr: '10.0.0.2', port: 0, server: false, failed: true },
    ],
  };
  await app.register(agentSelfRoutes, { self });
  await app.register(async (scope) => {
    await scope.register(rawBody, { limitBytes: 10, tooLarge: consulBodyTooLarge });
    scope.get('/query', { schema: { querystring: readQuery('tag') } }, async (request) => JSON.stringify(request.query));
    scope.put('/body', async (request) => `read ${Buffer.isBuffer(request.body) ? request.body.length : 'nothing'}`);
    scope.get('/fail', async () => {
      throw new KonsulError('conflict', 'a restore is in progress');
    });
  });
  await app.register(async (scope) => {
    await scope.register(rawBody);
    scope.put('/default-limit', async () => 'ok');
  });
  t.teardown(() => app.close());
  return { app, counters, shutdown };
}

t.test('one error handler, one not-found handler, the request counter and the shutdown rule', async (t) => {
  const { app, counters, shutdown } = await platform(t);
  const fail = await app.inject({ method: 'GET', url: '/fail' });
  t.equal(fail.statusCode, 409);
  t.equal(fail.headers['content-type'], 'text/plain; charset=utf-8');
  t.equal(fail.body, 'a restore is in progress');
  const missing = await app.inject({ method: 'DELETE', url: '/v1/nothing/here?x=1' });
  t.equal(missing.statusCode, 404);
  t.equal(missing.body, 'Not found: DELETE /v1/nothing/here');
  t.equal(counters.requests, 2);
  t.not((await app.inject({ method: 'GET', url: '/fail' })).headers.connection, 'close');
  shutdown.abort();
  t.equal((await app.inject({ method: 'GET', url: '/fail' })).headers.connection, 'close', 'replies close their connection once the process stops');
});

t.test('query schemas accept every value fastify parses, repeated names included', async (t) => {
  const { app } = await platform(t);
  const res = await app.inject({ method: 'GET', url: '/query?tag=a&tag=b&index=5&wait&stale&other=1' });
  t.equal(res.statusCode, 200);
  t.same(JSON.parse(res.body), { tag: ['a', 'b'], index: '5', wait: '', stale: '', other: '1' });
});

t.test("the raw-body plugin reads bytes whatever the type, and owns the scope's 413", async (t) => {
  const { app } = await platform(t);
  const form = { 'content-type': 'application/x-www-form-urlencoded' };
  t.equal((await app.inject({ method: 'PUT', url: '/body', payload: '12345', headers: form })).body, 'read 5');
  t.equal((await app.inject({ method: 'PUT', url: '/body' })).body, 'read nothing');
  const big = await app.inject({ method: 'PUT', url: '/body', payload: '12345678901', headers: form });
  t.equal(big.statusCode, 413);
  t.equal(big.body, 'Request body(11 bytes) too large, max size: 10 bytes. See https://developer.hashicorp.com/docs/agent/config/config-files#kv_max_value_size.');
  const fastifyText = await app.inject({ method: 'PUT', url: '/default-limit', payload: Buffer.alloc(1024 * 1024 + 1), headers: form });
  t.same([fastifyText.statusCode, fastifyText.body], [413, 'Request body is too large'], "without a 413 of its own, a scope answers fastify's text");

  // A chunked body has no Content-Length: it is cut off once it passes the limit.
  await app.listen({ host: '127.0.0.1', port: 0 });
  const { port } = app.server.address() as AddressInfo;
  const chunked = await new Promise<{ status: number; text: string }>((resolve, reject) => {
    const req = httpRequest({ host: '127.0.0.1', port, method: 'PUT', path: '/body', headers: { 'transfer-encoding': 'chunked' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (text += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.write('123456');
    req.end('789012');
  });
  t.equal(chunked.status, 413);
  t.match(chunked.text, /^Request body\(11 bytes\) too large, max size: 10 bytes/);
});

t.test('/v1/agent/self and /v1/agent/members from a self description', async (t) => {
  const { app } = await platform(t);
  const self = await app.inject({ method: 'GET', url: '/v1/agent/self' });
  t.equal(
    self.body,
    '{"Config":{"Datacenter":"dc1","NodeName":"n1","NodeID":"","Server":true,"Revision":"konsul","Version":"1.2.3"},"Member":{"Name":"n1","Addr":"127.0.0.1","Port":8300,"Tags":{"role":"consul","dc":"dc1","build":"1.2.3:konsul"},"Status":1},"Stats":{"raft":{"state":"Leader"}},"Meta":{}}',
  );
  const members = await app.inject({ method: 'GET', url: '/v1/agent/members' });
  t.equal(members.headers['content-type'], 'application/json; charset=utf-8');
  t.equal(
    members.body,
    '[{"Name":"n1","Addr":"127.0.0.1","Port":8300,"Tags":{"role":"consul","dc":"dc1","port":"8300","build":"1.2.3:konsul","vsn":"2","vsn_min":"2","vsn_max":"3","raft_vsn":"3"},"Status":1,"ProtocolMin":1,"ProtocolMax":5,"ProtocolCur":2,"DelegateMin":2,"DelegateMax":5,"DelegateCur":4},' +
      '{"Name":"c1","Addr":"10.0.0.2","Port":0,"Tags":{"role":"node","dc":"dc1","build":"1.2.3:konsul","vsn":"2","vsn_min":"2","vsn_max":"3"},"Status":4,"ProtocolMin":1,"ProtocolMax":5,"ProtocolCur":2,"DelegateMin":2,"DelegateMax":5,"DelegateCur":4}]',
  );
  const put = await app.inject({ method: 'PUT', url: '/v1/agent/members' });
  t.same([put.statusCode, put.body], [405, 'method PUT not allowed']);
});
