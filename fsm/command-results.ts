// What applying each command answers, by command type: the typed side of the Raft seam. A proposer
// (ClusterAccess.propose) gets back `CommandResult<C>` for the command it proposed instead of
// `unknown`. Any command may also answer an ApplyError (the FSM refused it and changed nothing).
//
// Pure types: this is the contract KonsulFsm.apply (konsul-fsm.ts) keeps for each command.
import type { Command, CommandType } from './commands.ts';
import type { ApplyError, ApplyResult } from './konsul-fsm.ts';
import type { CatalogApplyResult } from './state/catalog.ts';
import type { EventFireResult } from './state/events.ts';
import type { KvRecoveryApplyResult } from './state/kv-recovery.ts';
import type { TxnApplyResult } from './state/kv-txn.ts';
import type { SessionApplyResult } from './state/sessions.ts';

/** The result of each command type when the FSM applied it. */
export interface CommandResults {
  kvSet: ApplyResult;
  kvDelete: ApplyResult;
  kvDeleteTree: ApplyResult;
  kvReapTombstones: ApplyResult;
  txn: TxnApplyResult;
  eventFire: EventFireResult;
  snapshotRestore: ApplyResult;
  restoreBegin: ApplyResult;
  restoreChunk: ApplyResult;
  restoreCommit: ApplyResult;
  restoreAbort: ApplyResult;
  catalogRegister: CatalogApplyResult;
  catalogDeregister: CatalogApplyResult;
  catalogCheckStatus: CatalogApplyResult;
  sessionCreate: SessionApplyResult;
  sessionDestroy: SessionApplyResult;
  sessionRenew: SessionApplyResult;
  kvRecoveryRules: KvRecoveryApplyResult;
  kvRecoveryReap: KvRecoveryApplyResult;
  kvRecoveryPurge: KvRecoveryApplyResult;
}

/** What proposing `C` answers: its type's result, or the FSM's refusal. */
export type CommandResult<C extends Command> = CommandResults[C['type']] | ApplyError;

/** Bytes of an encoded command that remember which command they encode (encodeCommand's result). */
export type EncodedCommand<C extends Command = Command> = Uint8Array & { readonly __command?: C };

/** A typed proposer: replicates encoded command bytes and answers that command's result. */
export type ProposeCommand = <C extends Command>(command: EncodedCommand<C>) => Promise<CommandResult<C>>;

// Every command type has a result: a command type missing above fails to compile here.
type OnlyNever<T extends never> = T;
export type EveryCommandHasAResult = OnlyNever<Exclude<CommandType, keyof CommandResults>>;
