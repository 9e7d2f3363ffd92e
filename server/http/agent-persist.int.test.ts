// The agent's definition file (<data dir>/agent-local.json) under concurrent
// PUT /v1/agent/service/register: writes are a group commit (agent/core/local-agent.ts persist()), every
// registration is acknowledged only once a write that includes it is on disk, and an acknowledged
// registration survives kill -9. The first test runs the server in this process (real Raft storage
// in a temp dir, real socket on 127.0.0.1) to read the write counter; the second a real process.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { mergeConfig } from '../config.ts';
import { AGENT_STATE_FILE } from '../../agent/core/local-agent.ts';
import { startServer as startInProcess, type RunningServer } from '../main.ts';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../../test/kit/server-process.ts';

interface SavedState {
  version: number;
  services: { ID: string; Service: string; Port: number }[];
  checks: { spec: { CheckID: string; ServiceID: string; Status: string }; ttlMs: number; deregisterCriticalAfterMs: number }[];
}

const savedState = (dataDir: string) => JSON.parse(readFileSync(join(dataDir, AGENT_STATE_FILE), 'utf8')) as SavedState;

const registration = (i: number) => JSON.stringify({ Name: `gc-${i % 10}`, ID: `gc-${i}`, Port: 9000 + i, Check: { TTL: '1h', Status: 'passing' } });

async function register(url: string, i: number): Promise<number> {
  const res = await fetch(`${url}/v1/agent/service/register`, { method: 'PUT', body: registration(i), signal: AbortSignal.timeout(10_000) });
  await res.arrayBuffer();
  return res.status;
}

t.test('200 concurrent agent registrations: all acknowledged, all in the file, far fewer writes', async (t) => {
  const dataDir = tempDataDir('konsul-agent-gc-');
  const server: RunningServer = await startInProcess(
    mergeConfig({ dataDir, dev: true, nodeName: 'gc', httpAddr: { host: '127.0.0.1', port: 0 }, dnsAddr: null, logLevel: 'silent' }),
  );
  t.teardown(async () => {
    await server.stop();
    removeDir(dataDir);
  });
  const url = `http://127.0.0.1:${server.httpAddress.port}`;
  const before = server.localAgent.persistStats();
  const count = 200;
  const notInFileAtAck: number[] = [];
  const statuses = await Promise.all(
    Array.from({ length: count }, async (_, i) => {
      const status = await register(url, i);
      // Acknowledged: the file on disk already holds this registration.
      if (status === 200 && !savedState(dataDir).services.some((s) => s.ID === `gc-${i}`)) notInFileAtAck.push(i);
      return status;
    }),
  );
  t.equal(statuses.filter((s) => s === 200).length, count, 'every registration is acknowledged with 200');
  t.same(notInFileAtAck, [], 'each was in the file when its answer came');

  const saved = savedState(dataDir);
  t.equal(saved.version, 1);
  const ids = new Set(saved.services.map((s) => s.ID));
  t.equal(saved.services.length, count);
  t.ok(Array.from({ length: count }, (_, i) => `gc-${i}`).every((id) => ids.has(id)), 'every service is in the file');
  t.equal(saved.services.find((s) => s.ID === 'gc-137')?.Port, 9137);
  t.equal(saved.checks.length, count);
  const check = saved.checks.find((c) => c.spec.CheckID === 'service:gc-42');
  t.match(check, { spec: { ServiceID: 'gc-42', Status: 'passing' }, ttlMs: 3_600_000, deregisterCriticalAfterMs: 0 }, 'a check in the persisted format');

  const after = server.localAgent.persistStats();
  const writes = after.writes - before.writes;
  t.equal(after.changes - before.changes, count, 'one change per registration');
  t.ok(writes >= 1 && writes <= count / 8, `${writes} file writes for ${count} registrations`);
  t.comment(`${writes} file writes for ${count} concurrent registrations`);

  // Clients that send their next registration as soon as the last is answered (the bench's shape):
  // changes keep arriving while a write is in flight, and still share writes.
  const loopBefore = server.localAgent.persistStats().writes;
  const workers = 16;
  const perWorker = 15;
  const loopStatuses: number[] = [];
  await Promise.all(
    Array.from({ length: workers }, async (_, w) => {
      for (let i = 0; i < perWorker; i++) loopStatuses.push(await register(url, 1000 + w * perWorker + i));
    }),
  );
  const loopWrites = server.localAgent.persistStats().writes - loopBefore;
  t.equal(loopStatuses.filter((s) => s === 200).length, workers * perWorker);
  t.equal(savedState(dataDir).services.length, count + workers * perWorker);
  t.ok(loopWrites <= (workers * perWorker) / 3, `${loopWrites} file writes for ${workers * perWorker} closed-loop registrations`);
  t.comment(`${loopWrites} file writes for ${workers * perWorker} closed-loop registrations (16 clients)`);

  const listed = (await (await fetch(`${url}/v1/agent/services`)).json()) as Record<string, unknown>;
  t.equal(Object.keys(listed).length, count + workers * perWorker);
});

t.test('acknowledged agent registrations survive kill -9 during concurrent registration', async (t) => {
  const dataDir = tempDataDir('konsul-agent-gc-kill-');
  let server: ServerProcess | null = await startServer({ dataDir, node: 'gc-kill' });
  t.teardown(async () => {
    await server?.kill9();
    removeDir(dataDir);
  });
  const acked: number[] = [];
  let next = 0;
  let killed = false;
  const url = server.url;
  const load = Promise.all(
    Array.from({ length: 16 }, async () => {
      while (!killed) {
        const i = next++;
        try {
          if ((await register(url, i)) === 200 && !killed) acked.push(i);
        } catch {
          return; // connection cut by the kill: not acknowledged
        }
      }
    }),
  );
  while (acked.length < 150) await new Promise((resolve) => setTimeout(resolve, 10));
  // Answers seen before the kill are acknowledged; those read after it are not counted.
  const ackedAtKill = [...acked];
  killed = true;
  await server.kill9();
  await load;
  t.ok(ackedAtKill.length >= 150, `${ackedAtKill.length} registrations acknowledged before kill -9`);

  // The file is whole (valid JSON in the persisted format) and holds every acknowledged registration.
  const saved = savedState(dataDir);
  const inFile = new Set(saved.services.map((s) => s.ID));
  t.same(ackedAtKill.filter((i) => !inFile.has(`gc-${i}`)), [], 'every acknowledged registration is in the file');

  server = await startServer({ dataDir, node: 'gc-kill' });
  const listed = (await (await fetch(`${server.url}/v1/agent/services`)).json()) as Record<string, { Port: number }>;
  t.same(ackedAtKill.filter((i) => listed[`gc-${i}`]?.Port !== 9000 + i), [], 'every acknowledged registration is back after the restart');
  const checks = (await (await fetch(`${server.url}/v1/agent/checks`)).json()) as Record<string, { ServiceID: string }>;
  t.same(ackedAtKill.filter((i) => checks[`service:gc-${i}`]?.ServiceID !== `gc-${i}`), [], 'with their checks');
  await server.stop();
  server = null;
});
