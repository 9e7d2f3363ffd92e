// Health-check runners for the agent (issue 6). The public API: see check-runner.ts's header and
// README.md. Import from here: `import { CheckRunner, parseCheckDefinition } from './checks/index.ts'`.
export {
  CheckRunner,
  CheckRunnerError,
  ProbeTimeoutError,
  systemClock,
  type AddCheckOptions,
  type CheckClock,
  type CheckLogger,
  type CheckResultRecord,
  type CheckResultSource,
  type CheckRunnerOptions,
  type CheckState,
  type Probe,
  type ProbeContext,
  type ProbeResult,
} from './check-runner.ts';
export {
  CHECK_STATUSES,
  CheckDefinitionError,
  DEFAULT_NETWORK_TIMEOUT_MS,
  DEFAULT_OUTPUT_MAX_BYTES,
  DEFAULT_SCRIPT_TIMEOUT_MS,
  MIN_INTERVAL_MS,
  RUNNABLE_CHECK_TYPES,
  parseCheckDefinition,
  splitGrpcTarget,
  validateCheckDefinition,
  type CheckDefinition,
  type CheckStatus,
  type CheckType,
  type GoDurationValue,
  type GrpcCheckTarget,
  type HttpCheckTarget,
  type NormalizedCheck,
  type ParseCheckOptions,
  type ParseCheckResult,
  type TcpCheckTarget,
} from './definition.ts';
export { truncateHead, TailBuffer } from './output.ts';
export { defaultProbe, httpProbe, tcpProbe, grpcProbe, scriptProbe } from './probes.ts';
