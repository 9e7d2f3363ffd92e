// The agent's view of the servers: it learns them over RPC (`agent.servers`, asked of any
// `--retry-join` address or any server already known), talks RPC to one of them for anti-entropy
// and heartbeats, and sends HTTP API traffic to the same server's HTTP address. A server that fails
// (connection refused or lost, timeout) is rotated to the back of the list and the next is tried,
// as Consul's agent router does; the list is refreshed periodically and after every failure.
import http from 'node:http';
import { hostPortOf } from '../lib/host-port.ts';
import type { TcpTlsOptions } from '../raft/transport/sockets.ts';
import { agentRpcCaller, decodeAgentBody, encodeAgentBody, type AgentMethod, type AgentRequest, type AgentResponse, type AgentRpcCaller, type AgentServerInfo } from '../rpc/agent-protocol.ts';
import { RpcClient } from '../rpc/rpc-client.ts';

export class NoServersError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'NoServersError';
  }
}

/** An error a server answered on purpose (bad request, no leader): not a reason to fail over. */
export class RemoteRpcError extends Error {
  readonly remoteCode: string;
  constructor(remoteCode: string, message: string) {
    super(message);
    this.name = 'RemoteRpcError';
    this.remoteCode = remoteCode;
  }
}

export interface ServerPoolOptions {
  readonly nodeName: string;
  readonly retryJoin: readonly string[];
  readonly tls?: TcpTlsOptions;
  readonly refreshMs?: number;
  readonly log?: (level: 'warn' | 'info' | 'debug', message: string) => void;
  /** The server the agent talks to changed (failover), or the leader changed. */
  readonly onChange?: (reason: string) => void;
  /** Counts requests sent to servers (RPC and HTTP), for /v1/agent/metrics. */
  readonly countUpstream?: (kind: 'rpc' | 'http') => void;
}

export interface UpstreamRequest {
  readonly method: string;
  /** Path and query string, e.g. "/v1/kv/a?index=3". */
  readonly path: string;
  readonly headers?: Record<string, string>;
  readonly body?: Buffer;
  readonly timeoutMs: number;
  readonly signal?: AbortSignal;
}

export interface UpstreamResponse {
  readonly status: number;
  readonly headers: Record<string, string>;
  readonly body: Buffer;
  /** The server that answered. */
  readonly server: string;
}

/** Hop-by-hop and length headers the agent does not copy between its client and a server. */
const HOP_HEADERS = new Set(['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'host', 'upgrade', 'proxy-connection', 'te', 'trailer', 'date']);

export class ServerPool {
  private readonly options: ServerPoolOptions;
  private readonly rpcClient: RpcClient;
  private readonly httpAgent = new http.Agent({ keepAlive: true, maxSockets: 1024, maxFreeSockets: 64 });
  private list: AgentServerInfo[] = [];
  private leaderId = '';
  private datacenterName = '';
  private refreshTimer: NodeJS.Timeout | null = null;
  private refreshing: Promise<void> | null = null;
  private stopped = false;

  constructor(options: ServerPoolOptions) {
    this.options = options;
    // Only outbound requests: no listener, no Raft.
    this.rpcClient = RpcClient.standalone({ nodeId: `agent:${options.nodeName}`, tls: options.tls, dialTimeoutMs: 2000 });
  }

  /**
   * Learns the servers, retrying until one answers or `timeoutMs` passes (false then: the agent
   * starts anyway, as Consul's does, and keeps retrying every second), then refreshes periodically.
   */
  async start(timeoutMs: number): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    let found = false;
    for (;;) {
      try {
        await this.refresh();
        found = true;
        break;
      } catch (err) {
        if (Date.now() >= deadline || this.stopped) {
          this.options.log?.('warn', `agent: ${(err as Error).message}; retrying in the background`);
          break;
        }
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    let failing = !found;
    const loop = () => {
      if (this.stopped) return;
      this.refreshTimer = setTimeout(
        () => {
          void this.refresh()
            .then(() => {
              if (failing) this.options.onChange?.('found the servers');
              failing = false;
            })
            .catch((err: Error) => {
              if (!failing) this.options.log?.('warn', `agent: refreshing the server list: ${err.message}`);
              failing = true;
            })
            .finally(loop);
        },
        this.list.length === 0 ? 1000 : (this.options.refreshMs ?? 30_000),
      );
      this.refreshTimer.unref();
    };
    loop();
    return found;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.refreshTimer) clearTimeout(this.refreshTimer);
    this.httpAgent.destroy();
    this.rpcClient.stop();
  }

  servers(): readonly AgentServerInfo[] {
    return this.list;
  }

  leader(): string {
    return this.leaderId;
  }

  datacenter(): string {
    return this.datacenterName;
  }

  /** The server requests go to first. */
  current(): AgentServerInfo | undefined {
    return this.list[0];
  }

  /** Asks any reachable server (known ones first, then the retry-join addresses) for the server list. */
  refresh(): Promise<void> {
    this.refreshing ??= this.doRefresh().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  private async doRefresh(): Promise<void> {
    const addresses = [...new Set([...this.list.map((s) => s.rpcAddr), ...this.options.retryJoin])];
    let lastError: Error | null = null;
    for (const address of addresses) {
      try {
        this.options.countUpstream?.('rpc');
        const answer = await this.rpcClient.request(address, 'agent.servers', encodeAgentBody({}), { timeoutMs: 3000 });
        const parsed = decodeAgentBody(answer.body) as AgentResponse<'agent.servers'>;
        if (!Array.isArray(parsed.servers) || parsed.servers.length === 0) throw new Error(`${address} knows no servers yet`);
        this.adopt(parsed);
        return;
      } catch (err) {
        lastError = err as Error;
      }
    }
    throw new NoServersError(`no Konsul server answered at ${addresses.join(', ')}: ${lastError?.message ?? 'no address'}`);
  }

  /** Takes a new server list, keeping the current server first when it is still a member. */
  private adopt(answer: AgentResponse<'agent.servers'>): void {
    const previous = this.list[0]?.id;
    const servers = answer.servers.filter((s) => s.rpcAddr !== '');
    // A random order spreads agents over the servers; the current server stays first while it is a member.
    shuffle(servers);
    const keep = servers.findIndex((s) => s.id === previous);
    if (keep > 0) servers.unshift(...servers.splice(keep, 1));
    this.list = servers;
    this.datacenterName = answer.datacenter;
    if (answer.leader !== this.leaderId) {
      const before = this.leaderId;
      this.leaderId = answer.leader;
      if (before !== '') this.options.onChange?.(`leader changed from ${before} to ${answer.leader || '(none)'}`);
    }
  }

  /** Notes the leader a server reported (heartbeats carry it). */
  noteLeader(leader: string): void {
    if (leader === '' || leader === this.leaderId) return;
    const before = this.leaderId;
    this.leaderId = leader;
    if (before !== '') this.options.onChange?.(`leader changed from ${before} to ${leader}`);
  }

  /** Moves a failed server to the back of the list. */
  private rotate(failed: AgentServerInfo, why: string): void {
    const i = this.list.findIndex((s) => s.id === failed.id);
    if (i < 0 || this.list.length < 2) return;
    this.list.splice(i, 1);
    this.list.push(failed);
    this.options.log?.('warn', `agent: server ${failed.id} failed (${why}); using ${this.list[0]!.id}`);
    this.options.onChange?.(`failed over from ${failed.id} to ${this.list[0]!.id}`);
    void this.refresh().catch(() => undefined);
  }

  /**
   * An agent RPC to the current server, failing over to the next on connection errors. Errors a
   * server answered (bad request, no leader) come back as RemoteRpcError without failover.
   */
  call<M extends AgentMethod>(method: M, request: AgentRequest<M>, timeoutMs = 10_000): Promise<AgentResponse<M>> {
    return this.caller.call(method, request, timeoutMs);
  }

  private readonly caller: AgentRpcCaller = agentRpcCaller((method, body, timeoutMs) => this.callWithFailover(method, body, timeoutMs));

  private async callWithFailover(method: string, bytes: Uint8Array, timeoutMs: number): Promise<Uint8Array> {
    if (this.list.length === 0) await this.refresh();
    let lastError: Error | null = null;
    for (let attempt = 0; attempt < Math.max(2, this.list.length + 1); attempt++) {
      const server = this.list[0];
      if (!server) break;
      try {
        this.options.countUpstream?.('rpc');
        const answer = await this.rpcClient.request(server.rpcAddr, method, bytes, { timeoutMs });
        return answer.body;
      } catch (err) {
        const e = err as Error & { code?: string; remoteCode?: string };
        if (e.code === 'remote') throw new RemoteRpcError(e.remoteCode ?? 'remote', e.message);
        lastError = e;
        this.rotate(server, e.message);
        if (this.list.length < 2) await this.refresh().catch(() => undefined);
      }
    }
    throw new NoServersError(`no Konsul server reachable: ${lastError?.message ?? 'none known'}`);
  }

  /**
   * An HTTP request to a server's API. Requests that never reached a server (refused, no server)
   * move on to the next server; so do reads that fail in any way. A write whose connection was
   * lost after it was sent is not repeated: its outcome is unknown (500, as a server says for a
   * write lost with its leader).
   */
  async http(request: UpstreamRequest): Promise<UpstreamResponse> {
    if (this.list.length === 0) await this.refresh();
    const idempotent = request.method === 'GET' || request.method === 'HEAD';
    let lastError: Error | null = null;
    const attempts = Math.max(2, this.list.length + 1);
    for (let attempt = 0; attempt < attempts; attempt++) {
      const server = this.list[0];
      if (!server) break;
      if (!server.httpAddr) {
        this.rotate(server, 'no HTTP address known');
        continue;
      }
      try {
        this.options.countUpstream?.('http');
        return await this.httpOnce(server, request);
      } catch (err) {
        if (request.signal?.aborted) throw err;
        const e = err as Error & { sent?: boolean };
        lastError = e;
        if (!idempotent && e.sent === true) throw new UpstreamLostError(`lost contact with server ${server.id} while forwarding the write; its outcome is unknown`);
        this.rotate(server, e.message);
        if (this.list.length < 2) await this.refresh().catch(() => undefined);
      }
    }
    throw new NoServersError(`no Konsul server reachable: ${lastError?.message ?? 'none known'}`);
  }

  private httpOnce(server: AgentServerInfo, request: UpstreamRequest): Promise<UpstreamResponse> {
    const { host: httpHost, port } = hostPortOf(server.httpAddr);
    // A server whose API listens on every interface is reached at the host of its RPC address.
    const host = httpHost === '0.0.0.0' || httpHost === '::' || httpHost === '' ? hostPortOf(server.rpcAddr).host : httpHost;
    return new Promise((resolve, reject) => {
      let sent = false;
      const req = http.request(
        {
          host,
          port,
          method: request.method,
          path: request.path,
          agent: this.httpAgent,
          headers: { ...(request.headers ?? {}), ...(request.body ? { 'content-length': String(request.body.length) } : {}) },
          signal: request.signal,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            clearTimeout(timer);
            const headers: Record<string, string> = {};
            for (const [k, v] of Object.entries(res.headers)) {
              if (v === undefined || HOP_HEADERS.has(k)) continue;
              headers[k] = Array.isArray(v) ? v.join(', ') : v;
            }
            resolve({ status: res.statusCode ?? 500, headers, body: Buffer.concat(chunks), server: server.id });
          });
          res.on('error', (err: Error) => {
            clearTimeout(timer);
            reject(Object.assign(err, { sent: true }));
          });
        },
      );
      const timer = setTimeout(() => req.destroy(new Error(`no answer from ${server.id} within ${request.timeoutMs} ms`)), request.timeoutMs);
      timer.unref();
      req.on('socket', (socket) => {
        // A reused keep-alive socket is connected already; a new one counts as sent once connected.
        if (!socket.connecting) sent = true;
        else socket.once('connect', () => (sent = true));
      });
      req.on('error', (err: Error) => {
        clearTimeout(timer);
        // A reused keep-alive socket the server had closed: nothing was processed (ECONNRESET before any answer).
        const code = (err as NodeJS.ErrnoException).code;
        reject(Object.assign(err, { sent: sent && code !== 'ECONNREFUSED' && !(req.reusedSocket && code === 'ECONNRESET') }));
      });
      req.end(request.body);
    });
  }
}

export class UpstreamLostError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UpstreamLostError';
  }
}

function shuffle<T>(list: T[]): void {
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(Math.random() * (i + 1));
    [list[i], list[j]] = [list[j]!, list[i]!];
  }
}
