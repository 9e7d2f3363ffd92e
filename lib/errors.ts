// One error base for everything Konsul reports to a caller. Each failure carries a code from one
// closed set; the HTTP platform maps codes to statuses in a single table (http/status.ts), so domain
// code (the agent core, the cluster, Raft's host) never names an HTTP status.
//
// Pure: imported by every layer, including raft/core and fsm/.

export type KonsulErrorCode =
  | 'badRequest' // 400: the request is malformed or names something invalid
  | 'forbidden' // 403: the token may not do this
  | 'notFound' // 404
  | 'methodNotAllowed' // 405
  | 'conflict' // 409: the state does not allow it now (a restore in progress, a duplicate)
  | 'tooLarge' // 413: a body or value over its limit
  | 'tooManyRequests' // 429: a rate limit
  | 'internal' // 500: Consul's status for failures it does not classify (and for some it does)
  | 'noLeader' // 500 with Consul's exact "No cluster leader"
  | 'unreachable' // 502: another server could not be reached
  | 'unavailable' // 503: shutting down, or not ready
  | 'timeout'; // 504: another server did not answer in time

export class KonsulError extends Error {
  readonly code: KonsulErrorCode;

  constructor(code: KonsulErrorCode, message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'KonsulError';
    this.code = code;
  }
}

/** A KonsulError subclass with a fixed code and name. */
export type KonsulErrorClass<C extends KonsulErrorCode> = new (message: string, options?: ErrorOptions) => KonsulError & { readonly code: C };

/**
 * Defines a named error class with a fixed code (fastify's `createError` is the model): callers
 * can `instanceof` it, and the status follows from the code alone.
 */
export function defineError<C extends KonsulErrorCode>(name: string, code: C): KonsulErrorClass<C> {
  const cls = class extends KonsulError {
    declare readonly code: C;
    constructor(message: string, options?: ErrorOptions) {
      super(code, message, options);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  return cls as KonsulErrorClass<C>;
}

export const badRequest = (message: string): KonsulError => new KonsulError('badRequest', message);
export const notFound = (message: string): KonsulError => new KonsulError('notFound', message);

/** Consul's text when no leader is known; clients (consul-template, Vault) match on it. */
export const NO_LEADER_TEXT = 'No cluster leader';
