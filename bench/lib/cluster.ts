// Plumbing for the 3-server benchmarks (bench/cluster-vs-etcd.bench.ts, bench/failover.bench.ts):
// start a Konsul cluster (each server a child process on its own temp data dir, explicit loopback
// ports so the servers can --retry-join each other and a killed server can come back on the same
// addresses), kill -9 and restart one server, find the leader; start a 3-member etcd through
// ../shared/bench/etcd-cluster.sh in a private directory; and a small HTTP client with a timeout.
// Everything started here is registered with bench/lib/servers.ts's cleanup, and stopped by PID.
import { spawn, type ChildProcess } from 'node:child_process';
import http from 'node:http';
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { onCleanup, procCpuMs, REPO_ROOT, runCommand, SHARED_BENCH, sleep } from './servers.ts';

// ---------- ports ----------

/** n distinct free loopback TCP ports (bind port 0, read it, close; all held open until the last is read). */
export async function freePorts(n: number): Promise<number[]> {
  const servers: net.Server[] = [];
  try {
    const ports: number[] = [];
    for (let i = 0; i < n; i++) {
      const s = net.createServer();
      servers.push(s);
      await new Promise<void>((res, rej) => {
        s.once('error', rej);
        s.listen(0, '127.0.0.1', () => res());
      });
      ports.push((s.address() as net.AddressInfo).port);
    }
    return ports;
  } finally {
    await Promise.all(servers.map((s) => new Promise<void>((res) => s.close(() => res()))));
  }
}

// ---------- a small HTTP client ----------

export interface HttpResult {
  readonly ok: boolean;
  /** HTTP status, or 0 when no answer came (connection error or client timeout). */
  readonly status: number;
  /** The answer's body (first 2 kB, or maxBytes), or the error code ("ECONNREFUSED", "ECONNRESET", "timeout", ...). */
  readonly text: string;
  readonly ms: number;
}

export function httpCall(
  method: string,
  url: string,
  options: { body?: string | Buffer; agent?: http.Agent; timeoutMs?: number; headers?: Record<string, string>; maxBytes?: number } = {},
): Promise<HttpResult> {
  const maxBytes = options.maxBytes ?? 2048;
  const u = new URL(url);
  const body = options.body === undefined ? undefined : Buffer.isBuffer(options.body) ? options.body : Buffer.from(options.body);
  const t0 = performance.now();
  return new Promise((resolve) => {
    let done = false;
    const finish = (ok: boolean, status: number, text: string) => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve({ ok, status, text, ms: performance.now() - t0 });
    };
    const headers: Record<string, string | number> = { ...(options.headers ?? {}) };
    if (body) headers['content-length'] = body.length;
    const req = http.request(
      { host: u.hostname, port: u.port, method, path: `${u.pathname}${u.search}`, agent: options.agent ?? false, headers },
      (res) => {
        const chunks: Buffer[] = [];
        let bytes = 0;
        res.on('data', (c: Buffer) => {
          if (bytes < maxBytes) chunks.push(c);
          bytes += c.length;
        });
        res.on('end', () => {
          const status = res.statusCode ?? 0;
          finish(status >= 200 && status < 300, status, Buffer.concat(chunks).toString('utf8').slice(0, maxBytes));
        });
        res.on('error', (e: NodeJS.ErrnoException) => finish(false, 0, e.code ?? e.message));
      },
    );
    const timer = setTimeout(() => {
      finish(false, 0, 'timeout');
      req.destroy();
    }, options.timeoutMs ?? 10_000);
    req.on('error', (e: NodeJS.ErrnoException) => finish(false, 0, e.code ?? e.message));
    req.end(body);
  });
}

// ---------- process state ----------

/** True while `pid` exists and is not a zombie (a kill -9'd child not yet reaped counts as dead). */
export function pidAlive(pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    return state !== 'Z' && state !== 'X';
  } catch {
    return false;
  }
}

// ---------- Konsul cluster ----------

export interface KonsulMember {
  readonly name: string;
  readonly httpUrl: string;
  /** The RPC address it advertises (what /v1/status/leader answers). */
  readonly rpcAddr: string;
  readonly dataDir: string;
  /** PID of the current process (of the last incarnation if it was killed). */
  pid(): number;
  /** Its process is running. */
  alive(): boolean;
  /** Lines it wrote to stdout/stderr (besides the two "listening" lines), the last 200. */
  logTail(): string[];
  logLines(): number;
}

export interface KonsulCluster {
  readonly members: readonly KonsulMember[];
  readonly urls: readonly string[];
  member(name: string): KonsulMember;
  /** Member name for an RPC address, or '' when unknown. */
  nameOfRpc(rpcAddr: string): string;
  /** The leader as `name` says it (GET /v1/status/leader): a member name, '' for none, null if no answer. */
  leaderSeenBy(name: string, timeoutMs?: number): Promise<string | null>;
  /** Waits until every running member names the same leader; resolves with its name. */
  waitForLeader(timeoutMs?: number): Promise<string>;
  /** kill -9 a member by PID; resolves right after the signal is sent, with performance.now() just before sending it. */
  kill9(name: string): { pid: number; atMs: number };
  /** Starts a member again on its data dir and ports, after kill9; resolves once it listens. */
  restart(name: string): Promise<void>;
  /** Sum of the running members' user+system CPU time, ms. */
  cpuMs(): number;
  /** SIGTERM every member by PID (SIGKILL after 15 s), then removes the data dirs. */
  stop(): Promise<void>;
}

interface MemberState {
  name: string;
  httpPort: number;
  rpcPort: number;
  dataDir: string;
  child: ChildProcess | null;
  pid: number;
  exited: boolean;
  exitWaiters: (() => void)[];
  tail: string[];
  lines: number;
  rpcAddr: string;
}

export interface KonsulClusterOptions {
  nodes?: number;
  logLevel?: string;
  extraArgs?: readonly string[];
  startTimeoutMs?: number;
  /** The Konsul checkout whose bin/konsul.js runs (and its working directory); default this one. */
  root?: string;
  /** Node options before the script (e.g. `--import` of a preload). */
  nodeArgs?: readonly string[];
  /** Environment of the server processes (default this process's). */
  env?: NodeJS.ProcessEnv;
}

export async function startKonsulCluster(options: KonsulClusterOptions = {}): Promise<KonsulCluster> {
  const n = options.nodes ?? 3;
  const root = options.root ?? REPO_ROOT;
  const logLevel = options.logLevel ?? 'warn';
  const ports = await freePorts(2 * n);
  const members: MemberState[] = [];
  for (let i = 0; i < n; i++) {
    members.push({
      name: `n${i + 1}`,
      httpPort: ports[2 * i]!,
      rpcPort: ports[2 * i + 1]!,
      dataDir: mkdtempSync(join(tmpdir(), `konsul-cluster-bench-n${i + 1}-`)),
      child: null,
      pid: 0,
      exited: true,
      exitWaiters: [],
      tail: [],
      lines: 0,
      rpcAddr: `127.0.0.1:${ports[2 * i + 1]!}`,
    });
  }

  const waitExit = (m: MemberState, ms: number) =>
    new Promise<boolean>((res) => {
      if (m.exited) return res(true);
      const t = setTimeout(() => res(false), ms);
      m.exitWaiters.push(() => {
        clearTimeout(t);
        res(true);
      });
    });

  const spawnMember = (m: MemberState): Promise<void> => {
    const args = [
      ...(options.nodeArgs ?? []),
      join(root, 'bin', 'konsul.js'), 'server',
      '--node', m.name,
      '--data-dir', m.dataDir,
      '--http-addr', `127.0.0.1:${m.httpPort}`,
      '--rpc-addr', `127.0.0.1:${m.rpcPort}`,
      '--bootstrap-expect', String(n),
      ...members.filter((o) => o !== m).flatMap((o) => ['--retry-join', `127.0.0.1:${o.rpcPort}`]),
      '--log-level', logLevel,
      ...(options.extraArgs ?? []),
    ];
    const child = spawn(process.execPath, args, { cwd: root, env: options.env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    if (child.pid === undefined) throw new Error(`could not spawn konsul ${m.name}`);
    m.child = child;
    m.pid = child.pid;
    m.exited = false;
    let listening: (() => void) | null = null;
    const onLine = (line: string) => {
      const rpc = /rpc listening on \S+ \(advertised as ([^)\s]+)\)/.exec(line);
      if (rpc) {
        m.rpcAddr = rpc[1]!;
        return;
      }
      if (/listening on http:\/\//.test(line) && listening) {
        listening();
        listening = null;
        return;
      }
      if (line.trim() === '') return;
      m.lines++;
      m.tail.push(`[${m.name}] ${line}`);
      if (m.tail.length > 200) m.tail.shift();
    };
    for (const stream of [child.stdout, child.stderr]) {
      let buf = '';
      stream?.setEncoding('utf8');
      stream?.on('data', (chunk: string) => {
        buf += chunk;
        let nl = buf.indexOf('\n');
        while (nl >= 0) {
          onLine(buf.slice(0, nl));
          buf = buf.slice(nl + 1);
          nl = buf.indexOf('\n');
        }
      });
    }
    child.on('exit', () => {
      if (m.child !== child) return;
      m.exited = true;
      for (const w of m.exitWaiters.splice(0)) w();
    });
    return new Promise<void>((res, rej) => {
      const t = setTimeout(() => rej(new Error(`konsul ${m.name} did not start within ${options.startTimeoutMs ?? 60_000} ms:\n${m.tail.join('\n')}`)), options.startTimeoutMs ?? 60_000);
      listening = () => {
        clearTimeout(t);
        res();
      };
      m.exitWaiters.push(() => {
        clearTimeout(t);
        rej(new Error(`konsul ${m.name} exited before listening:\n${m.tail.join('\n')}`));
      });
    });
  };

  const stopMember = async (m: MemberState) => {
    if (m.exited) return;
    try {
      process.kill(m.pid, 'SIGTERM');
    } catch {
      /* already gone */
    }
    if (!(await waitExit(m, 15_000))) {
      try {
        process.kill(m.pid, 'SIGKILL');
      } catch {
        /* already gone */
      }
      await waitExit(m, 5_000);
    }
  };

  let stopping: Promise<void> | null = null;
  const stopAll = () => {
    stopping ??= (async () => {
      await Promise.all(members.map((m) => stopMember(m)));
      for (const m of members) rmSync(m.dataDir, { recursive: true, force: true });
    })();
    return stopping;
  };
  const unregister = onCleanup(`konsul cluster (${members.map((m) => m.name).join(', ')})`, stopAll);

  try {
    await Promise.all(members.map((m) => spawnMember(m)));
  } catch (err) {
    await stopAll();
    unregister();
    throw err;
  }

  const byName = new Map(members.map((m) => [m.name, m]));
  const get = (name: string) => {
    const m = byName.get(name);
    if (!m) throw new Error(`no member ${name}`);
    return m;
  };
  const nameOfRpc = (addr: string) => members.find((m) => m.rpcAddr === addr)?.name ?? '';
  const agents = new Map(members.map((m) => [m.name, new http.Agent({ keepAlive: true, maxSockets: 4 })]));

  const leaderSeenBy = async (name: string, timeoutMs = 1000): Promise<string | null> => {
    const m = get(name);
    const r = await httpCall('GET', `http://127.0.0.1:${m.httpPort}/v1/status/leader`, { agent: agents.get(name)!, timeoutMs });
    if (!r.ok) return null;
    const addr = JSON.parse(r.text) as string;
    return addr === '' ? '' : nameOfRpc(addr) || `?${addr}`;
  };

  const cluster: KonsulCluster = {
    members: members.map((m) => ({
      name: m.name,
      httpUrl: `http://127.0.0.1:${m.httpPort}`,
      get rpcAddr() {
        return m.rpcAddr;
      },
      dataDir: m.dataDir,
      pid: () => m.pid,
      alive: () => !m.exited && pidAlive(m.pid),
      logTail: () => [...m.tail],
      logLines: () => m.lines,
    })),
    urls: members.map((m) => `http://127.0.0.1:${m.httpPort}`),
    member(name) {
      const x = cluster.members.find((m) => m.name === name);
      if (!x) throw new Error(`no member ${name}`);
      return x;
    },
    nameOfRpc,
    leaderSeenBy,
    async waitForLeader(timeoutMs = 30_000) {
      const deadline = performance.now() + timeoutMs;
      let last: (string | null)[] = [];
      while (performance.now() < deadline) {
        const running = members.filter((m) => !m.exited);
        last = await Promise.all(running.map((m) => leaderSeenBy(m.name)));
        const first = last[0];
        if (first && last.every((x) => x === first)) return first;
        await sleep(20);
      }
      throw new Error(`no agreed leader within ${timeoutMs} ms (last answers: ${JSON.stringify(last)})\n${members.flatMap((m) => m.tail.slice(-5)).join('\n')}`);
    },
    kill9(name) {
      const m = get(name);
      if (m.exited) throw new Error(`${name} is not running`);
      const atMs = performance.now();
      process.kill(m.pid, 'SIGKILL');
      return { pid: m.pid, atMs };
    },
    async restart(name) {
      const m = get(name);
      if (!m.exited) await waitExit(m, 10_000);
      if (!m.exited) throw new Error(`${name} is still running`);
      agents.get(name)!.destroy();
      agents.set(name, new http.Agent({ keepAlive: true, maxSockets: 4 }));
      await spawnMember(m);
    },
    cpuMs: () => members.reduce((a, m) => a + (m.exited ? 0 : procCpuMs(m.pid)), 0),
    async stop() {
      for (const a of agents.values()) a.destroy();
      await stopAll();
      unregister();
    },
  };
  return cluster;
}

// ---------- etcd cluster (../shared/bench/etcd-cluster.sh) ----------

export const ETCD_MEMBERS = ['m1', 'm2', 'm3'] as const;
export const ETCD_CLUSTER_URLS: Record<(typeof ETCD_MEMBERS)[number], string> = {
  m1: 'http://127.0.0.1:32479',
  m2: 'http://127.0.0.1:32579',
  m3: 'http://127.0.0.1:32679',
};

export interface EtcdCluster {
  readonly urls: readonly string[];
  readonly version: string;
  /** The private KBENCH_DIR (pass it to the shared etcd tools in `env`). */
  readonly root: string;
  readonly env: NodeJS.ProcessEnv;
  /** PID of member m1..m3 from its pid file (0 if none). */
  pid(member: string): number;
  /**
   * Starts member m1..m3 (again, on its data dir) as etcd-cluster.sh's `restart N` does, but spawned
   * directly, so its PID is etcd's at once; resolves with the PID (the member may not serve yet).
   */
  startMember(member: string): number;
  cpuMs(): number;
  stop(): Promise<void>;
}

const ETCD_PORTS: Record<(typeof ETCD_MEMBERS)[number], { client: number; peer: number }> = {
  m1: { client: 32479, peer: 32480 },
  m2: { client: 32579, peer: 32580 },
  m3: { client: 32679, peer: 32680 },
};

/**
 * One member of the 3-member cluster with exactly etcd-cluster.sh's flags, data dir, log and PID
 * file ($root/mN/{data,etcd.log,etcd.pid}), so the script's stop, kill9, leader and wait work on it.
 */
function spawnEtcdMember(root: string, member: string): number {
  const ports = ETCD_PORTS[member as (typeof ETCD_MEMBERS)[number]];
  if (!ports) throw new Error(`no etcd member ${member}`);
  const dir = join(root, member);
  mkdirSync(dir, { recursive: true });
  const peer = (m: (typeof ETCD_MEMBERS)[number]) => `http://127.0.0.1:${ETCD_PORTS[m].peer}`;
  const log = openSync(join(dir, 'etcd.log'), 'a');
  const child = spawn(
    process.env.ETCD_BIN ?? 'etcd',
    [
      '--name', member,
      '--data-dir', `${dir}/data`,
      '--listen-client-urls', `http://127.0.0.1:${ports.client}`,
      '--advertise-client-urls', `http://127.0.0.1:${ports.client}`,
      '--listen-peer-urls', `http://127.0.0.1:${ports.peer}`,
      '--initial-advertise-peer-urls', `http://127.0.0.1:${ports.peer}`,
      '--initial-cluster', ETCD_MEMBERS.map((m) => `${m}=${peer(m)}`).join(','),
      '--initial-cluster-token', 'konsul-bench',
      '--initial-cluster-state', 'new',
    ],
    { stdio: ['ignore', log, log], detached: true },
  );
  closeSync(log);
  if (child.pid === undefined) throw new Error(`could not spawn etcd ${member}`);
  child.unref();
  writeFileSync(join(dir, 'etcd.pid'), `${child.pid}\n`);
  return child.pid;
}

/**
 * Starts a 3-member etcd (default settings, fsync on) through the shared script in a private
 * KBENCH_DIR, so `stop all` stops only what this benchmark started. With `direct`, the members are
 * spawned from here with the script's flags and layout (spawnEtcdMember) and the script only waits
 * for their health: the script's own start checks each member 50 ms after forking it, which on a
 * busy machine is before setsid has exec'd etcd, and fails.
 */
export async function startEtcdCluster(options: { direct?: boolean } = {}): Promise<EtcdCluster> {
  const root = mkdtempSync(join(tmpdir(), 'konsul-etcd-cluster-bench-'));
  const env = { ...process.env, KBENCH_DIR: root };
  const script = join(SHARED_BENCH, 'etcd-cluster.sh');
  let stopping: Promise<void> | null = null;
  const stop = () => {
    stopping ??= (async () => {
      const r = await runCommand('bash', [script, 'stop', 'all'], { env, timeoutMs: 60_000 });
      if (r.code !== 0) process.stderr.write(`etcd-cluster.sh stop all exited ${r.code}: ${r.stderr}\n`);
      rmSync(root, { recursive: true, force: true });
    })();
    return stopping;
  };
  const unregister = onCleanup('etcd cluster', stop);
  let started;
  if (options.direct) {
    for (const m of ETCD_MEMBERS) spawnEtcdMember(root, m);
    started = await runCommand('bash', [script, 'wait', 'cluster'], { env, timeoutMs: 90_000 });
  } else {
    started = await runCommand('bash', [script, 'start', 'cluster'], { env, timeoutMs: 90_000 });
  }
  if (started.code !== 0) {
    await stop();
    unregister();
    throw new Error(`etcd-cluster.sh start cluster failed (${started.code}):\n${started.stdout}${started.stderr}`);
  }
  const pid = (member: string) => {
    try {
      return Number(readFileSync(join(root, member, 'etcd.pid'), 'utf8').trim());
    } catch {
      return 0;
    }
  };
  const version = (await runCommand('etcd', ['--version'])).stdout.split('\n')[0]?.replace('etcd Version: ', '') ?? '?';
  return {
    urls: ETCD_MEMBERS.map((m) => ETCD_CLUSTER_URLS[m]),
    version,
    root,
    env,
    pid,
    startMember: (member) => spawnEtcdMember(root, member),
    cpuMs: () => ETCD_MEMBERS.reduce((a, m) => a + (pid(m) ? procCpuMs(pid(m)) : 0), 0),
    stop: async () => {
      await stop();
      unregister();
    },
  };
}

/** The JSON gateway's view of one etcd member: its id, the leader it follows ('0' for none), its term. */
export async function etcdStatus(url: string, agent?: http.Agent, timeoutMs = 1000): Promise<{ memberId: string; leader: string; term: number } | null> {
  const r = await httpCall('POST', `${url}/v3/maintenance/status`, { body: '{}', agent, timeoutMs, headers: { 'content-type': 'application/json' } });
  if (!r.ok) return null;
  // uint64 fields come as strings in the gateway's JSON; read them as text to keep all digits.
  const memberId = /"member_id":"?(\d+)/.exec(r.text)?.[1];
  const leader = /"leader":"?(\d+)/.exec(r.text)?.[1] ?? '0';
  const term = /"raftTerm":"?(\d+)/.exec(r.text)?.[1] ?? /"raft_term":"?(\d+)/.exec(r.text)?.[1];
  if (memberId === undefined) return null;
  return { memberId, leader, term: Number(term ?? 0) };
}
