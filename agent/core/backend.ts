// The agent core's `rpc` delegate (Consul's agent/local/state.go talks to the servers through one):
// how the local state reaches the catalog. A server's agent proposes through Raft and reads its own
// FSM (fsmBackend); a client agent sends the agent RPC protocol to a server (agent/anti-entropy.ts).
import { encodeCommand } from '../../fsm/commands.ts';
import type { ApplyError } from '../../fsm/konsul-fsm.ts';
import type { CatalogCheckSpec, CatalogCommand, CatalogNodeSpec, CatalogServiceSpec } from '../../fsm/state/catalog-commands.ts';
import type { CatalogApplyResult, CatalogTable } from '../../fsm/state/catalog.ts';
import type { AgentApplyOutcome } from '../../rpc/agent-protocol.ts';

export type { AgentApplyOutcome } from '../../rpc/agent-protocol.ts';

/** The agent's node as the catalog holds it, for an anti-entropy comparison. */
export interface NodeCatalogState {
  readonly node: CatalogNodeSpec | null;
  readonly services: readonly CatalogServiceSpec[];
  readonly checks: readonly CatalogCheckSpec[];
  /** Nodes in the catalog (scales the full-sync period). */
  readonly nodeCount: number;
}

/** How the agent reaches the catalog. */
export interface LocalAgentBackend {
  /**
   * Writes catalog commands (in this order of submission, concurrently). Throws when no server can
   * be reached at all; `unavailable` outcomes may or may not have been applied.
   */
  apply(commands: readonly CatalogCommand[]): Promise<AgentApplyOutcome[]>;
  /** The node's entries as of a point at least as new as every acknowledged write. */
  nodeState(node: string): Promise<NodeCatalogState>;
}

/** A server's backend: Raft proposals, and the local FSM read after a read barrier. */
export function fsmBackend(catalog: CatalogTable, propose: (command: Uint8Array) => Promise<unknown>, readBarrier: () => Promise<void>): LocalAgentBackend {
  return {
    apply: (commands) =>
      Promise.all(
        commands.map(async (command): Promise<AgentApplyOutcome> => {
          try {
            const result = (await propose(encodeCommand(command))) as CatalogApplyResult | ApplyError;
            return result.ok ? { ok: true } : { ok: false, error: result.error };
          } catch (err) {
            return { ok: false, error: (err as Error).message, unavailable: true };
          }
        }),
      ),
    nodeState: async (node) => {
      await readBarrier();
      return { node: catalog.getNode(node) ?? null, services: catalog.nodeServices(node), checks: catalog.nodeChecks(node), nodeCount: catalog.nodes().length };
    },
  };
}
