// Runs a real multi-server Konsul cluster for integration tests: one child process per server, each
// behind a fault proxy (fault-proxy.ts) that every other server dials, so tests can kill, pause,
// restart and partition servers.
//
// Addressing, all on 127.0.0.0/8:
//  - HTTP API on 127.0.0.1, ephemeral port (it may change across restarts);
//  - the real RPC listener on the node's own IP (127.0.0.11, .12, ...), which is also the source
//    address of its outbound server-to-server connections, so proxies can tell who is sending;
//  - the advertised RPC address is the node's proxy on 127.0.0.1, stable for the whole test, so a
//    restarted server is found again at the same address.
//
// Every process is started and stopped by PID; destroy() (registered with t.teardown when a test
// is given) kills whatever is left, removes the temporary directories and closes the proxies. As a
// last resort every server kills itself when the test process dies (the guard in test/kit/konsul-process.ts).
// Every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULTS as SERVER_DEFAULTS } from '../../server/config.ts';
import { KONSUL_BIN } from '../kit/cli.ts';
import { httpRequest } from '../kit/http.ts';
import { GUARD_ARGS, trackPid, untrackPid } from '../kit/konsul-process.ts';
import { tail, waitFor } from '../kit/wait.ts';
import { ANY, FaultNetwork, type FaultMode, type FaultProxy, type HostPort } from './fault-proxy.ts';

const READY_LINE = /listening on http:\/\/([^:\s]+):(\d+)/;
const RPC_LINE = /konsul: rpc listening on ([^\s:]+):(\d+)/;

/** The first node's source IP is 127.0.0.11, the next 127.0.0.12, and so on. */
const FIRST_NODE_IP_OCTET = 11;

/**
 * A server with a DNS interface binds 127.0.0.1:8600 unless told otherwise, so the servers of a
 * cluster (all on this host) would fight over it: each gets an ephemeral port on its own IP, unless
 * the test's config names one. (Checked on the defaults so that the harness runs servers with and
 * without the DNS interface.)
 */
const SERVER_HAS_DNS = 'dnsAddr' in SERVER_DEFAULTS;

// The helpers every cluster test uses come from the test kit; re-exported for those tests.
export { sleep, tail, waitFor, type WaitOptions } from '../kit/wait.ts';
export { httpRequest, type HttpAnswer } from '../kit/http.ts';

// -----------------------------------------------------------------------------------------------
// Nodes
// -----------------------------------------------------------------------------------------------

/** 'stopping': SIGTERM sent, not exited yet (no longer a target for requests). */
export type NodeState = 'new' | 'starting' | 'running' | 'paused' | 'stopping' | 'stopped';

export interface ExitRecord {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  /** The harness asked for it (stop, kill9, destroy); false = the server died on its own. */
  readonly expected: boolean;
}

export interface NodeStartOptions {
  /** Arguments for this start only (e.g. a different --bootstrap-expect). */
  readonly extraArgs?: readonly string[];
  readonly timeoutMs?: number;
}

interface NodeSetup {
  readonly name: string;
  readonly ip: string;
  readonly dir: string;
  readonly proxy: FaultProxy;
  readonly config: Record<string, unknown>;
  /** The server's arguments for the next start (after the script path). */
  readonly args: (node: ClusterNode) => string[];
  readonly logLevel: string;
  readonly startTimeoutMs: number;
  readonly env: NodeJS.ProcessEnv;
  readonly command: ServerCommand;
}

/** How to run a server: `node [execArgv] script [args]`. */
export interface ServerCommand {
  readonly script: string;
  readonly execArgv?: readonly string[];
}

/** One server of the cluster: a child process that can be started, stopped, killed and paused. */
export class ClusterNode {
  readonly name: string;
  /** Source IP of its server-to-server connections, and the host its RPC listener binds. */
  readonly ip: string;
  readonly dataDir: string;
  readonly configFile: string;
  readonly proxy: FaultProxy;
  readonly exits: ExitRecord[] = [];
  #setup: NodeSetup;
  #state: NodeState = 'new';
  #child: ChildProcess | null = null;
  #exited: Promise<void> | null = null;
  #expectExit = false;
  #output = '';
  #starts = 0;
  #httpPort = 0;
  #rpcPort = 0;

  constructor(setup: NodeSetup) {
    this.#setup = setup;
    this.name = setup.name;
    this.ip = setup.ip;
    this.proxy = setup.proxy;
    this.dataDir = join(setup.dir, 'data');
    this.configFile = join(setup.dir, 'config.json');
    mkdirSync(this.dataDir, { recursive: true });
    writeFileSync(this.configFile, JSON.stringify(setup.config, null, 2));
  }

  get state(): NodeState {
    return this.#state;
  }

  /** Running, paused or stopping: the process exists. */
  get alive(): boolean {
    return this.#state === 'running' || this.#state === 'paused' || this.#state === 'stopping';
  }

  get pid(): number | null {
    return this.#child?.pid ?? null;
  }

  /** The HTTP API, e.g. http://127.0.0.1:41234 (valid while alive; may change on restart). */
  get url(): string {
    if (this.#httpPort === 0) throw new Error(`${this.name} has not started yet`);
    return `http://127.0.0.1:${this.#httpPort}`;
  }

  /** The HTTP port of the current (or last) run; 0 before the first start. */
  get httpPort(): number {
    return this.#httpPort;
  }

  /** What other servers dial: this node's proxy, stable across restarts. */
  get advertise(): string {
    return this.proxy.addressText;
  }

  /** The real RPC listener, once the server printed it. */
  get rpcAddress(): HostPort | null {
    return this.#rpcPort === 0 ? null : { host: this.ip, port: this.#rpcPort };
  }

  /** Everything the process wrote over all its runs, with a marker line per start. */
  output(): string {
    return this.#output;
  }

  /** The arguments the next start would use (for failure messages and replays). */
  commandLine(): string[] {
    const { script, execArgv = [] } = this.#setup.command;
    return [...execArgv, script, ...this.#setup.args(this)];
  }

  /**
   * Starts the server and waits for its ready line. Reuses the previous HTTP and RPC ports when
   * it can; falls back to ephemeral ports if one is taken.
   */
  async start(options: NodeStartOptions = {}): Promise<void> {
    if (this.alive || this.#state === 'starting') throw new Error(`${this.name} is already ${this.#state}`);
    const reuse = this.#httpPort !== 0 || this.#rpcPort !== 0;
    try {
      await this.#spawn(this.#httpPort, this.#rpcPort, options);
    } catch (err) {
      if (!reuse || !/EADDRINUSE|address already in use/i.test((err as Error).message)) throw err;
      await this.#spawn(0, 0, options);
    }
  }

  async #spawn(httpPort: number, rpcPort: number, options: NodeStartOptions): Promise<void> {
    this.#starts++;
    this.#state = 'starting';
    this.#expectExit = false;
    this.#httpPort = httpPort;
    this.#rpcPort = rpcPort;
    const args = [...this.commandLine(), ...(options.extraArgs ?? [])];
    this.#output += `\n===== [harness] start #${this.#starts} of ${this.name}: node ${args.join(' ')}\n`;
    // Killed with the test process (GUARD_ARGS, trackPid: test/kit/konsul-process.ts).
    const child = spawn(process.execPath, [...GUARD_ARGS, ...args], { stdio: ['ignore', 'pipe', 'pipe', 'ipc'], env: this.#setup.env });
    // The channel exists only for the guard: it must not keep the test process alive either.
    child.channel?.unref();
    this.#child = child;
    trackPid(child.pid);
    const pid = child.pid;
    let startedOutput = '';
    const onData = (d: Buffer): void => {
      const s = d.toString();
      this.#output += s;
      startedOutput += s;
    };
    child.stdout!.on('data', onData);
    child.stderr!.on('data', onData);
    this.#exited = new Promise<void>((resolve) => {
      child.once('exit', (code, signal) => {
        untrackPid(pid);
        this.exits.push({ code, signal, expected: this.#expectExit });
        this.#output += `===== [harness] ${this.name} (pid ${pid}) exited: code ${code}, signal ${signal}${this.#expectExit ? '' : ' (UNEXPECTED)'}\n`;
        if (this.#child === child) this.#state = 'stopped';
        resolve();
      });
    });
    const exited = this.#exited;
    const timeoutMs = options.timeoutMs ?? this.#setup.startTimeoutMs;
    try {
      await new Promise<void>((resolve, reject) => {
        let settled = false;
        const finish = (err?: Error): void => {
          if (settled) return;
          settled = true;
          clearTimeout(timer);
          child.stdout!.off('data', check);
          if (err) reject(err);
          else resolve();
        };
        const timer = setTimeout(() => finish(new Error(`${this.name} did not start within ${timeoutMs} ms:\n${tail(startedOutput)}`)), timeoutMs);
        const check = (): void => {
          const rpc = RPC_LINE.exec(startedOutput);
          if (rpc && this.proxy.target === null) {
            this.#rpcPort = Number(rpc[2]);
            this.proxy.setTarget({ host: rpc[1]!, port: this.#rpcPort });
          }
          const ready = READY_LINE.exec(startedOutput);
          if (ready) {
            this.#httpPort = Number(ready[2]);
            if (this.proxy.target === null) finish(new Error(`${this.name} printed its ready line without the RPC line:\n${tail(startedOutput)}`));
            else finish();
          }
        };
        this.proxy.setTarget(null);
        child.stdout!.on('data', check);
        void exited.then(() => finish(new Error(`${this.name} exited before it was ready:\n${tail(startedOutput)}`)));
      });
    } catch (err) {
      await this.#killAndWait();
      throw err;
    }
    this.#state = 'running';
  }

  /** SIGTERM, and wait for the exit (SIGKILL if it takes longer than `timeoutMs`). Returns the exit code. */
  async stop(timeoutMs = 10000): Promise<number | null> {
    if (!this.#processExists()) return this.exits.at(-1)?.code ?? null;
    this.#expectExit = true;
    const wasPaused = this.#state === 'paused';
    if (this.#state !== 'starting') this.#state = 'stopping';
    if (wasPaused) this.#signal('SIGCONT');
    this.#signal('SIGTERM');
    if (!(await this.#waitExit(timeoutMs))) {
      this.#output += `===== [harness] ${this.name} did not exit within ${timeoutMs} ms of SIGTERM: SIGKILL\n`;
      await this.#killAndWait();
      throw new Error(`${this.name} did not exit within ${timeoutMs} ms of SIGTERM:\n${tail(this.#output)}`);
    }
    return this.exits.at(-1)?.code ?? null;
  }

  /** kill -9, and wait for the exit. */
  async kill9(): Promise<void> {
    await this.#killAndWait();
  }

  /** Stops (SIGTERM, or kill -9 with `{ kill: true }`) if alive, then starts again on the same data. */
  async restart(options: NodeStartOptions & { kill?: boolean } = {}): Promise<void> {
    if (options.kill) await this.kill9();
    else await this.stop();
    await this.start(options);
  }

  /** SIGSTOP: the process stays, but neither its RPC nor its HTTP side answers. */
  pause(): void {
    if (this.#state !== 'running') throw new Error(`cannot pause ${this.name}: it is ${this.#state}`);
    this.#signal('SIGSTOP');
    this.#state = 'paused';
  }

  /** SIGCONT. */
  resume(): void {
    if (this.#state !== 'paused') throw new Error(`cannot resume ${this.name}: it is ${this.#state}`);
    this.#signal('SIGCONT');
    this.#state = 'running';
  }

  /** The exits the harness did not cause (crashes), for assertions. */
  unexpectedExits(): ExitRecord[] {
    return this.exits.filter((e) => !e.expected);
  }

  #processExists(): boolean {
    const child = this.#child;
    return child !== null && child.exitCode === null && child.signalCode === null;
  }

  #signal(sig: NodeJS.Signals): void {
    const pid = this.#child?.pid;
    if (pid === undefined) return;
    try {
      process.kill(pid, sig);
    } catch {
      // exited meanwhile: the exit handler records it
    }
  }

  async #waitExit(timeoutMs: number): Promise<boolean> {
    const exited = this.#exited;
    if (exited === null) return true;
    let timer!: NodeJS.Timeout;
    const timedOut = new Promise<boolean>((r) => (timer = setTimeout(() => r(false), timeoutMs)));
    try {
      return await Promise.race([exited.then(() => true), timedOut]);
    } finally {
      clearTimeout(timer);
    }
  }

  async #killAndWait(): Promise<void> {
    const child = this.#child;
    if (child === null || !this.#processExists()) return;
    this.#expectExit = true;
    this.#signal('SIGKILL');
    // SIGKILL cannot be ignored; the bound only guards against a missed exit event.
    if (!(await this.#waitExit(10000))) throw new Error(`${this.name} (pid ${child.pid}) did not die after SIGKILL`);
  }
}

// -----------------------------------------------------------------------------------------------
// Cluster
// -----------------------------------------------------------------------------------------------

/** What a tap test offers for cleanup (t.teardown). */
export interface TeardownHost {
  teardown(fn: () => unknown): void;
}

export interface ClusterOptions {
  readonly size: number;
  /** Node names (default s1, s2, ...). */
  readonly names?: readonly string[];
  /** snake_case config-file keys for every server (merged over {@link DEFAULT_CONFIG}). */
  readonly config?: Record<string, unknown>;
  /** The tap test: destroy() is registered with its teardown before anything starts. */
  readonly t?: TeardownHost;
  readonly logLevel?: string;
  /** Per-server start timeout. */
  readonly startTimeoutMs?: number;
  /** Wait for an agreed leader before returning (default true). */
  readonly waitForLeader?: boolean;
  readonly leaderTimeoutMs?: number;
  /** Extra arguments for every server. */
  readonly extraArgs?: readonly string[];
  /** What to run instead of bin/konsul.js (e.g. a server built from another checkout). */
  readonly command?: ServerCommand;
}

/** Fast Raft for tests: 50 ms ticks, the default 10-tick election timeout. */
export const DEFAULT_CONFIG: Readonly<Record<string, unknown>> = { raft_tick_ms: 50 };

export interface AddNodeOptions {
  readonly name?: string;
  /** Config keys for this server only (merged over the cluster's). */
  readonly config?: Record<string, unknown>;
  /** Passed as --bootstrap-expect; default none (a joining server does not bootstrap). */
  readonly bootstrapExpect?: number;
  /** Wait until it is a voter in the Raft configuration (default true). */
  readonly waitForVoter?: boolean;
  readonly timeoutMs?: number;
}

export interface RaftServer {
  readonly ID: string;
  readonly Node: string;
  readonly Address: string;
  readonly Leader: boolean;
  readonly Voter: boolean;
}

export interface RaftConfiguration {
  readonly Servers: RaftServer[];
  readonly Index: number;
}

export class Cluster {
  readonly root: string;
  readonly network = new FaultNetwork();
  readonly nodes: ClusterNode[] = [];
  readonly #options: ClusterOptions;
  readonly #config: Readonly<Record<string, unknown>>;
  #destroyed = false;

  constructor(options: ClusterOptions) {
    this.#options = options;
    this.#config = { ...DEFAULT_CONFIG, ...(options.config ?? {}) };
    this.root = mkdtempSync(join(tmpdir(), 'konsul-cluster-'));
  }

  /** The config-file keys every server gets. */
  get config(): Readonly<Record<string, unknown>> {
    return this.#config;
  }

  node(name: string): ClusterNode {
    const n = this.nodes.find((x) => x.name === name);
    if (n === undefined) throw new Error(`no node ${name} (have ${this.nodes.map((x) => x.name).join(', ')})`);
    return n;
  }

  /** Nodes whose process runs and is not paused: they can answer. */
  running(): ClusterNode[] {
    return this.nodes.filter((n) => n.state === 'running');
  }

  /** Nodes whose process exists (running or paused). */
  alive(): ClusterNode[] {
    return this.nodes.filter((n) => n.alive);
  }

  /** The node advertising `address` (its proxy address), if any. */
  nodeAt(address: string): ClusterNode | undefined {
    return this.nodes.find((n) => n.advertise === address);
  }

  /** Creates the node (proxy, directories, config) without starting it. */
  async createNode(name: string, args: (node: ClusterNode) => string[], config: Record<string, unknown>): Promise<ClusterNode> {
    if (this.#destroyed) throw new Error('cluster destroyed');
    if (this.nodes.some((n) => n.name === name)) throw new Error(`node ${name} exists`);
    const ip = `127.0.0.${FIRST_NODE_IP_OCTET + this.nodes.length}`;
    const proxy = await this.network.addNode({ name, ip });
    const dir = join(this.root, name);
    const node = new ClusterNode({
      name,
      ip,
      dir,
      proxy,
      config: SERVER_HAS_DNS ? { dns_addr: `${ip}:0`, ...config } : config,
      args,
      logLevel: this.#options.logLevel ?? 'warn',
      startTimeoutMs: this.#options.startTimeoutMs ?? 30000,
      // tap's loader hooks are for the test process, not for the servers.
      env: { ...process.env, NODE_OPTIONS: '' },
      command: this.#options.command ?? { script: KONSUL_BIN },
    });
    this.nodes.push(node);
    return node;
  }

  /** The server arguments for `node`; the ports are those of its last run (0 at first). */
  serverArgs(node: ClusterNode, extra: { bootstrapExpect?: number; retryJoin: readonly string[] }): string[] {
    return [
      'server',
      '--node',
      node.name,
      '--data-dir',
      node.dataDir,
      '--http-addr',
      `127.0.0.1:${node.httpPort}`,
      '--rpc-addr',
      `${node.ip}:${node.rpcAddress?.port ?? 0}`,
      '--rpc-advertise',
      node.advertise,
      ...(extra.bootstrapExpect !== undefined ? ['--bootstrap-expect', String(extra.bootstrapExpect)] : []),
      ...extra.retryJoin.flatMap((a) => ['--retry-join', a]),
      '--config',
      node.configFile,
      '--log-level',
      this.#options.logLevel ?? 'warn',
      ...(this.#options.extraArgs ?? []),
    ];
  }

  /**
   * Polls /v1/status/leader on the running nodes (or `among`) until all of them name the same
   * leader, and that leader is one of them; returns it.
   */
  async waitForLeader(timeoutMs = 20000, among?: readonly ClusterNode[]): Promise<ClusterNode> {
    let last = '';
    try {
      return await waitFor(
        async () => {
          const nodes = among ?? this.running();
          if (nodes.length === 0) throw new Error('no running node');
          const answers = await Promise.all(
            nodes.map(async (n) => {
              try {
                const r = await httpRequest(`${n.url}/v1/status/leader`, { timeoutMs: 1000 });
                return r.status === 200 ? (JSON.parse(r.text) as string) : `HTTP ${r.status}`;
              } catch (err) {
                return `error ${(err as Error).message}`;
              }
            }),
          );
          last = nodes.map((n, i) => `${n.name}→${answers[i] || '""'}`).join(', ');
          const first = answers[0]!;
          if (!answers.every((a) => a === first)) return undefined;
          const leader = this.nodeAt(first);
          return leader !== undefined && nodes.includes(leader) ? leader : undefined;
        },
        { timeoutMs, intervalMs: 100, what: 'an agreed leader' },
      );
    } catch (err) {
      throw new Error(`${(err as Error).message}; answers: ${last}`);
    }
  }

  /** The agreed leader among the running nodes (waits for one). */
  leader(timeoutMs?: number): Promise<ClusterNode> {
    return this.waitForLeader(timeoutMs);
  }

  /** The running nodes other than the agreed leader. */
  async followers(timeoutMs?: number): Promise<ClusterNode[]> {
    const leader = await this.waitForLeader(timeoutMs);
    return this.running().filter((n) => n !== leader);
  }

  /** GET /v1/operator/raft/configuration from `via` (default: any running node). */
  async raftConfiguration(via?: ClusterNode): Promise<RaftConfiguration> {
    const node = via ?? this.running()[0];
    if (node === undefined) throw new Error('no running node');
    const r = await httpRequest(`${node.url}/v1/operator/raft/configuration`, { timeoutMs: 3000 });
    if (r.status !== 200) throw new Error(`raft configuration from ${node.name}: HTTP ${r.status} ${r.text}`);
    return JSON.parse(r.text) as RaftConfiguration;
  }

  /** Waits until the Raft configuration (as the leader reports it) has exactly these voters. */
  async waitForVoters(names: readonly string[], timeoutMs = 20000): Promise<RaftConfiguration> {
    const want = [...names].sort().join(',');
    return waitFor(
      async () => {
        const leader = await this.waitForLeader(Math.min(5000, timeoutMs));
        const conf = await this.raftConfiguration(leader);
        const voters = conf.Servers.filter((s) => s.Voter)
          .map((s) => s.Node || s.ID)
          .sort()
          .join(',');
        if (voters !== want) throw new Error(`voters are ${voters}, want ${want}`);
        return conf;
      },
      { timeoutMs, intervalMs: 200, what: `voters ${want}` },
    );
  }

  // ----- faults -----

  /** Blocks both directions between `a` and `b` (default: everyone else). */
  partition(a: readonly (ClusterNode | string)[], b?: readonly (ClusterNode | string)[], mode: FaultMode = 'blackhole'): void {
    const names = (xs: readonly (ClusterNode | string)[]): string[] => xs.map((x) => (typeof x === 'string' ? x : x.name));
    this.network.partition(names(a), b === undefined ? undefined : names(b), mode);
  }

  /** Cuts `node` off from every other server, both directions. */
  isolate(node: ClusterNode | string, mode: FaultMode = 'blackhole'): void {
    this.network.isolate(typeof node === 'string' ? node : node.name, mode);
  }

  /** Blocks the connections `from` opens to `to` (either may be ANY). */
  block(from: ClusterNode | string, to: ClusterNode | string, mode: FaultMode = 'blackhole'): void {
    const name = (x: ClusterNode | string): string => (typeof x === 'string' ? x : x.name);
    this.network.block(name(from), name(to), mode);
  }

  /** Removes every fault rule (or those naming `node`). */
  heal(node?: ClusterNode | string): void {
    this.network.heal(node === undefined ? undefined : typeof node === 'string' ? node : node.name);
  }

  // ----- membership -----

  /**
   * Starts a new server that finds the cluster through --retry-join (every existing server's
   * advertised address) and, unless told otherwise, waits until it is a voter.
   */
  async addNode(options: AddNodeOptions = {}): Promise<ClusterNode> {
    const name = options.name ?? nextName(this.nodes.map((n) => n.name));
    const peers = this.nodes.map((n) => n.advertise);
    const bootstrap = options.bootstrapExpect !== undefined ? { bootstrapExpect: options.bootstrapExpect } : {};
    const node = await this.createNode(name, (n) => this.serverArgs(n, { ...bootstrap, retryJoin: peers }), { ...this.#config, ...(options.config ?? {}) });
    await node.start();
    if (options.waitForVoter ?? true) {
      await waitFor(
        async () => {
          const leader = await this.waitForLeader(5000);
          const conf = await this.raftConfiguration(leader);
          return conf.Servers.some((s) => (s.Node === name || s.ID === name) && s.Voter) ? true : undefined;
        },
        { timeoutMs: options.timeoutMs ?? 30000, intervalMs: 200, what: `${name} to become a voter` },
      );
    }
    return node;
  }

  // ----- lifecycle -----

  /** Starts every node that is not alive, concurrently. */
  async startAll(): Promise<void> {
    await Promise.all(this.nodes.filter((n) => !n.alive).map((n) => n.start()));
  }

  /**
   * SIGTERM to every alive node, concurrently, and waits for all of them; returns the exit codes
   * by name. A node that does not exit within `timeoutMs` is SIGKILLed and reported as 'killed'
   * (this never throws, so the caller can assert on the codes and carry on).
   */
  async stopAll(timeoutMs = 10000): Promise<Record<string, number | null | 'killed'>> {
    const alive = this.alive();
    const codes = await Promise.all(alive.map((n) => n.stop(timeoutMs).catch(() => 'killed' as const)));
    return Object.fromEntries(alive.map((n, i) => [n.name, codes[i] ?? null]));
  }

  /** Crashes of any node ("s2: code 1"), for assertions. */
  unexpectedExits(): string[] {
    return this.nodes.flatMap((n) => n.unexpectedExits().map((e) => `${n.name}: code ${e.code}, signal ${e.signal}`));
  }

  /** Every node's output, for failure messages. */
  outputs(maxCharsPerNode = 4000): string {
    return this.nodes.map((n) => `----- ${n.name} (${n.state}, ip ${n.ip}, advertise ${n.advertise}) -----\n${tail(n.output(), maxCharsPerNode)}`).join('\n');
  }

  /** Kills every process this cluster started (by PID), closes the proxies, removes the files. */
  async destroy(): Promise<void> {
    if (this.#destroyed) return;
    this.#destroyed = true;
    await Promise.all(
      this.alive().map(async (n) => {
        try {
          await n.stop(3000);
        } catch {
          // stop() already fell back to SIGKILL; nothing more to do
        }
      }),
    );
    // Anything still starting (a start that is being awaited elsewhere) is killed too.
    await Promise.all(this.nodes.map((n) => n.kill9().catch(() => undefined)));
    await this.network.close();
    rmSync(this.root, { recursive: true, force: true });
  }

  get destroyed(): boolean {
    return this.#destroyed;
  }
}

function nextName(taken: readonly string[]): string {
  for (let i = taken.length + 1; ; i++) if (!taken.includes(`s${i}`)) return `s${i}`;
}

/**
 * Starts a cluster of `size` servers that bootstrap together (--bootstrap-expect size, each
 * retry-joining the others) and, by default, waits for an agreed leader. With `t`, destroy() is
 * registered as a teardown first, so a failure anywhere still cleans up.
 */
export async function startCluster(options: ClusterOptions): Promise<Cluster> {
  if (!Number.isInteger(options.size) || options.size < 1) throw new Error('size must be a positive integer');
  const names = options.names ?? Array.from({ length: options.size }, (_, i) => `s${i + 1}`);
  if (names.length !== options.size) throw new Error(`${names.length} names for ${options.size} servers`);
  const cluster = new Cluster(options);
  options.t?.teardown(() => cluster.destroy());
  try {
    for (const name of names) {
      await cluster.createNode(
        name,
        (n) =>
          cluster.serverArgs(n, {
            bootstrapExpect: options.size,
            retryJoin: cluster.nodes.filter((o) => o !== n && names.includes(o.name)).map((o) => o.advertise),
          }),
        { ...cluster.config },
      );
    }
    await cluster.startAll();
    if (options.waitForLeader ?? true) await cluster.waitForLeader(options.leaderTimeoutMs ?? 30000);
  } catch (err) {
    const detail = `${(err as Error).message}\n${cluster.outputs()}`;
    if (options.t === undefined) await cluster.destroy();
    throw new Error(detail);
  }
  return cluster;
}

export { ANY };
