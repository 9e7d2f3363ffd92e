// Nothing acknowledged is lost: a server under concurrent write load is killed with SIGKILL at
// random moments and restarted on the same data directory; every write it answered `true` to must
// be there, with the right value.
import t from 'tap';
import { removeDir, startServer, tempDataDir, type ServerProcess } from '../test/kit/server-process.ts';

const WRITERS = 16;
const ROUNDS = 4;

interface WriterState {
  /** Highest sequence number acknowledged for the writer's own key. */
  acked: number;
  /** Unique keys acknowledged (one per successful write). */
  readonly ackedKeys: string[];
}

async function put(url: string, key: string, value: string): Promise<boolean> {
  try {
    const res = await fetch(`${url}/v1/kv/${key}`, { method: 'PUT', body: value, signal: AbortSignal.timeout(5000) });
    return res.ok && (await res.text()) === 'true';
  } catch {
    return false; // connection reset by the kill: outcome unknown, not acknowledged
  }
}

/** Writes until `stop` resolves; each writer overwrites its own key and adds one unique key per write. */
async function writeLoad(url: string, writers: WriterState[], stop: Promise<void>): Promise<number> {
  let stopped = false;
  void stop.then(() => (stopped = true));
  let attempts = 0;
  await Promise.all(
    writers.map(async (w, i) => {
      while (!stopped) {
        const seq = w.acked + 1;
        attempts++;
        // The unique key is written first; the counter key only after it is acknowledged.
        const uniqueKey = `dur/log/w${i}/${seq}`;
        if (!(await put(url, uniqueKey, `seq-${seq}`))) return;
        w.ackedKeys.push(uniqueKey);
        if (!(await put(url, `dur/counter/w${i}`, String(seq)))) return;
        w.acked = seq;
      }
    }),
  );
  return attempts;
}

t.test('acknowledged writes survive kill -9 at random moments', async (t) => {
  const dataDir = tempDataDir('konsul-durability-');
  const writers: WriterState[] = Array.from({ length: WRITERS }, () => ({ acked: 0, ackedKeys: [] }));
  let server: ServerProcess | null = null;
  t.teardown(async () => {
    await server?.kill9();
    removeDir(dataDir);
  });
  // Random moments, but reproducible from the printed seed.
  const seed = Number(process.env.DURABILITY_SEED ?? Date.now() % 100000);
  let x = seed;
  const rand = () => ((x = (x * 1103515245 + 12345) % 2147483648) / 2147483648);
  t.comment(`seed ${seed} (replay with DURABILITY_SEED=${seed})`);

  for (let round = 0; round < ROUNDS; round++) {
    server = await startServer({ dataDir, node: 'durable' });
    const killAfterMs = 300 + Math.floor(rand() * 700);
    let killed!: () => void;
    const killedSignal = new Promise<void>((r) => (killed = r));
    const load = writeLoad(server.url, writers, killedSignal);
    await new Promise((r) => setTimeout(r, killAfterMs));
    await server.kill9();
    killed();
    await load;
    t.pass(`round ${round}: killed after ${killAfterMs} ms`);
  }

  server = await startServer({ dataDir, node: 'durable' });
  const url = server.url;
  let checkedKeys = 0;
  const missing: string[] = [];
  const wrongCounters: string[] = [];
  for (let i = 0; i < writers.length; i++) {
    const w = writers[i]!;
    const res = await fetch(`${url}/v1/kv/dur/log/w${i}/?keys`);
    const present = new Set(res.status === 404 ? [] : ((await res.json()) as string[]));
    for (const key of w.ackedKeys) {
      checkedKeys++;
      if (!present.has(key)) missing.push(key);
    }
    if (w.acked > 0) {
      const counter = await fetch(`${url}/v1/kv/dur/counter/w${i}?raw`);
      const value = counter.status === 200 ? Number(await counter.text()) : 0;
      // The last acknowledged value, or the one written after it whose answer the kill swallowed.
      if (!(value === w.acked || value === w.acked + 1)) wrongCounters.push(`w${i}: acked ${w.acked}, found ${value}`);
    }
  }
  t.ok(checkedKeys > 100, `checked ${checkedKeys} acknowledged writes`);
  t.same(missing, [], 'no acknowledged key is missing');
  t.same(wrongCounters, [], 'every counter holds its acknowledged value');
  const code = await server.stop();
  t.equal(code, 0);
  server = null;
});
