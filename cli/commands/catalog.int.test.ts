// konsulctl catalog / services / health end to end: the real CLI (bin/konsulctl.js) against a real
// Konsul server, checking outputs and exit statuses.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { konsulctl, type CliResult } from '../../test/kit/cli.ts';
import { startInProcessServer, type InProcessServer } from '../../test/kit/in-process-server.ts';

// The server runs in this process (test/kit/in-process-server.ts); konsulctl is the real program.
let server: InProcessServer;

t.before(async () => {
  server = await startInProcessServer({ config: { nodeName: 'cli-cat' } });
});

t.teardown(() => server.stop());

function run(args: string[], input = ''): Promise<CliResult> {
  return konsulctl(server.url, args, { input });
}

t.test('services register (flags), catalog services|nodes, health', async (t) => {
  let r = await run(['services', 'register', '--name', 'web', '--id', 'web-1', '--port', '8080', '--tag', 'v1', '--tag', 'edge', '--meta', 'team=core', '--depends-on', 'db', '--ttl', '30s']);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'Registered service: web\n');
  r = await run(['catalog', 'services']);
  t.equal(r.stdout, 'consul\nweb\n');
  r = await run(['catalog', 'services', '--tags']);
  t.equal(r.stdout, 'consul  -\nweb     v1,edge\n');
  r = await run(['catalog', 'nodes']);
  t.equal(r.stdout, 'Node     ID  Address    DC\ncli-cat  -   127.0.0.1  dc1\n');
  r = await run(['catalog', 'nodes', '--service', 'web', '--detailed']);
  t.match(r.stdout, /^Node\s+ID\s+Address\s+DC\s+TaggedAddresses\s+Meta\ncli-cat\s+-\s+127\.0\.0\.1\s+dc1\s+lan=127\.0\.0\.1,lan_ipv4=127\.0\.0\.1,wan=127\.0\.0\.1,wan_ipv4=127\.0\.0\.1\s+consul-network-segment=\n$/);
  r = await run(['health', 'web']);
  t.equal(r.code, 0);
  t.equal(r.stdout, 'Node     Address    ServiceID  Port  Status    Checks\ncli-cat  127.0.0.1  web-1      8080  critical  serfHealth=passing,service:web-1=critical\n');
  r = await run(['health', 'web', '--passing']);
  t.equal(r.stdout, 'Node  Address  ServiceID  Port  Status  Checks\n', 'a TTL check starts critical: only the header');
  r = await run(['health', 'web', '--tag', 'v1', '--tag', 'nope', '--format', 'json']);
  t.same(JSON.parse(r.stdout), []);
  r = await run(['services', 'dependencies', 'web']);
  t.match(r.stdout, /^Service\s+web\n/m);
  t.match(r.stdout, /^Missing\s+db\n/m);
  r = await run(['services', 'deregister', '--id', 'web-1']);
  t.equal(r.stdout, 'Deregistered service: web-1\n');
  t.equal((await run(['catalog', 'services'])).stdout, 'consul\n');
});

t.test('services register|deregister from a definition file', async (t) => {
  const file = join(server.config.dataDir, 'services.json');
  writeFileSync(file, JSON.stringify({ services: [{ name: 'api', port: 9000, tags: ['a'] }, { Name: 'worker', ID: 'worker-7' }] }));
  let r = await run(['services', 'register', file]);
  t.equal(r.code, 0, r.stderr);
  t.equal(r.stdout, 'Registered service: api\nRegistered service: worker\n');
  t.equal((await run(['catalog', 'services', '--tags'])).stdout, 'api     a\nconsul  -\nworker  -\n');
  r = await run(['services', 'register', '-'], JSON.stringify({ service: { name: 'stdin-svc' } }));
  t.equal(r.stdout, 'Registered service: stdin-svc\n');
  r = await run(['services', 'deregister', file]);
  t.equal(r.stdout, 'Deregistered service: api\nDeregistered service: worker-7\n');
  await run(['services', 'deregister', '--id', 'stdin-svc']);
  t.equal((await run(['catalog', 'services'])).stdout, 'consul\n');
});

t.test('usage and server errors', async (t) => {
  let r = await run(['services', 'register', '--port', '80']);
  t.equal(r.code, 2);
  t.match(r.stderr, /^konsulctl: --name is required/);
  r = await run(['services', 'register', '--name', 'x', '--port', 'eighty']);
  t.equal(r.code, 2);
  r = await run(['services', 'deregister']);
  t.equal(r.code, 2);
  r = await run(['services', 'deregister', '--id', 'ghost']);
  t.equal(r.code, 1);
  t.equal(r.stderr, 'konsulctl: Konsul answered 404 Not Found: Unknown service ID "ghost". Ensure that the service ID is passed, not the service name.\n');
  r = await run(['services', 'dependencies', 'ghost']);
  t.equal(r.code, 1);
});
