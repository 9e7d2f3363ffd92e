// The one table from a KonsulError's code to the HTTP status both processes answer with, and the one
// function that turns any error into Consul's plain-text reply (status + message). Domain code throws
// KonsulErrors (lib/errors.ts) and never names a status.
import { KonsulError, type KonsulErrorCode } from '../lib/errors.ts';

export const STATUS_OF_CODE: { readonly [C in KonsulErrorCode]: number } = {
  badRequest: 400,
  forbidden: 403,
  notFound: 404,
  methodNotAllowed: 405,
  conflict: 409,
  tooLarge: 413,
  tooManyRequests: 429,
  internal: 500,
  noLeader: 500,
  unreachable: 502,
  unavailable: 503,
  timeout: 504,
};

const CODE_OF_STATUS = new Map<number, KonsulErrorCode>(
  (Object.entries(STATUS_OF_CODE) as [KonsulErrorCode, number][]).filter(([code]) => code !== 'noLeader').map(([code, status]) => [status, code]),
);

/** The code for a status another server answered (statuses outside the table are `internal`). */
export function codeOfStatus(status: number): KonsulErrorCode {
  return CODE_OF_STATUS.get(status) ?? 'internal';
}

export interface ErrorReply {
  readonly status: number;
  readonly text: string;
  /** An outcome Konsul expects (a KonsulError): logged as one line, never with a stack. */
  readonly expected: boolean;
}

/**
 * The status and text Consul would send for `err`: a KonsulError's code and message; fastify's own
 * 4xx errors (a malformed request, a media type it cannot read) as fastify says them; anything
 * else is a 500 with its message.
 */
export function errorReply(err: unknown): ErrorReply {
  if (err instanceof KonsulError) return { status: STATUS_OF_CODE[err.code], text: err.message, expected: true };
  const framework = err as { statusCode?: unknown; message?: unknown };
  if (typeof framework.statusCode === 'number' && framework.statusCode >= 400 && framework.statusCode < 500) {
    return { status: framework.statusCode, text: typeof framework.message === 'string' ? framework.message : 'Bad request', expected: true };
  }
  return { status: 500, text: err instanceof Error ? err.message : String(err), expected: false };
}
