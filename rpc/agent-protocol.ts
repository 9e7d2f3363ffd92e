// The agent RPC protocol: what a client agent may ask a server over the server RPC transport
// (docs/adr/0013-agent-mode.md), as one map of method name -> request and response types. Bodies are
// UTF-8 JSON in the frames' body bytes (raft/transport/codec.ts); the server's handler is
// server/agent-rpc.ts, the client agent/servers.ts (ServerPool.call).
//
//   agent.servers    -> the servers with their RPC and HTTP addresses and the leader;
//   agent.apply      -> catalog commands of the agent's anti-entropy, proposed through the leader;
//   agent.nodeState  -> the agent's node, services and checks as the catalog holds them (linearizable);
//   agent.heartbeat  -> "this agent is alive", answered by the leader (the leader owns serfHealth).
import type { CatalogCommand, CatalogNodeSpec } from '../fsm/state/catalog-commands.ts';
import type { CatalogCheck, CatalogService } from '../fsm/state/catalog.ts';

/** The most catalog commands one agent.apply may carry. */
export const MAX_AGENT_BATCH = 256;

export interface AgentServerInfo {
  readonly id: string;
  readonly rpcAddr: string;
  readonly httpAddr: string;
  readonly voter: boolean;
}

export interface AgentServersAnswer {
  readonly datacenter: string;
  readonly leader: string;
  readonly servers: readonly AgentServerInfo[];
}

/** One command's outcome; `unavailable` = it may not have been applied (no leader, lost leader): retry later. */
export type AgentApplyOutcome = { readonly ok: true } | { readonly ok: false; readonly error: string; readonly unavailable?: boolean };

export interface AgentApplyRequest {
  readonly commands: readonly CatalogCommand[];
}

export interface AgentApplyAnswer {
  readonly results: AgentApplyOutcome[];
}

export interface AgentNodeStateRequest {
  readonly node: string;
}

export interface AgentNodeState {
  readonly node: CatalogNodeSpec | null;
  readonly services: readonly CatalogService[];
  readonly checks: readonly CatalogCheck[];
  /** Nodes in the catalog (the agent scales its full-sync interval with it, as Consul's aeScale). */
  readonly nodeCount: number;
  readonly leader: string;
  /** The server that answered. */
  readonly server: string;
}

export interface HeartbeatRequest {
  readonly node: CatalogNodeSpec;
}

export interface HeartbeatAnswer {
  readonly leader: string;
  readonly nodeMissing: boolean;
  /** The node's services and checks in the catalog (serfHealth not counted). */
  readonly services: number;
  readonly checks: number;
}

/** Method name -> request and response. */
export interface AgentProtocol {
  'agent.servers': { request: Record<string, never>; response: AgentServersAnswer };
  'agent.apply': { request: AgentApplyRequest; response: AgentApplyAnswer };
  'agent.nodeState': { request: AgentNodeStateRequest; response: AgentNodeState };
  'agent.heartbeat': { request: HeartbeatRequest; response: HeartbeatAnswer };
}

export type AgentMethod = keyof AgentProtocol;
export type AgentRequest<M extends AgentMethod> = AgentProtocol[M]['request'];
export type AgentResponse<M extends AgentMethod> = AgentProtocol[M]['response'];

export const AGENT_RPC_METHODS = ['agent.servers', 'agent.apply', 'agent.nodeState', 'agent.heartbeat'] as const satisfies readonly AgentMethod[];

export function isAgentMethod(method: string): method is AgentMethod {
  return (AGENT_RPC_METHODS as readonly string[]).includes(method);
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** A request or response body as it travels. */
export function encodeAgentBody(value: unknown): Uint8Array {
  return encoder.encode(JSON.stringify(value));
}

/** The JSON of a body; the caller knows (or checks) its shape. */
export function decodeAgentBody(bytes: Uint8Array): unknown {
  return JSON.parse(decoder.decode(bytes));
}

/** Sends raw body bytes for a method and resolves with the answer's bytes (a transport's request). */
export type RawCall = (method: string, body: Uint8Array, timeoutMs: number) => Promise<Uint8Array>;

/** The typed client side of the protocol. */
export interface AgentRpcCaller {
  call<M extends AgentMethod>(method: M, request: AgentRequest<M>, timeoutMs?: number): Promise<AgentResponse<M>>;
}

const DEFAULT_CALL_TIMEOUT_MS = 10_000;

/** Wraps a raw request function in the typed `call`. */
export function agentRpcCaller(raw: RawCall): AgentRpcCaller {
  return {
    async call<M extends AgentMethod>(method: M, request: AgentRequest<M>, timeoutMs = DEFAULT_CALL_TIMEOUT_MS): Promise<AgentResponse<M>> {
      return decodeAgentBody(await raw(method, encodeAgentBody(request), timeoutMs)) as AgentResponse<M>;
    },
  };
}
