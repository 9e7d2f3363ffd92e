// One error type for everything the HTTP API answers with a non-2xx status, and the one place where
// internal errors (Raft, storage) are mapped to Consul's statuses and texts.
import { ProposalError, ReadIndexError } from '../raft/host/raft-host.ts';
import { ClusterError } from './cluster/cluster-service.ts';

export class HttpError extends Error {
  readonly statusCode: number;
  constructor(statusCode: number, message: string) {
    super(message);
    this.name = 'HttpError';
    this.statusCode = statusCode;
  }
}

export const badRequest = (message: string): HttpError => new HttpError(400, message);
export const notFound = (message: string): HttpError => new HttpError(404, message);

/** Consul's text when no leader is known; clients (consul-template, Vault) match on it. */
export const NO_LEADER_TEXT = 'No cluster leader';

/** Maps any error to the status and plain-text body Consul would send. */
export function toHttpError(err: unknown): HttpError {
  if (err instanceof HttpError) return err;
  if (err instanceof ProposalError) {
    switch (err.reason) {
      case 'notLeader':
        return new HttpError(500, err.leader ? `not the leader; the leader is ${err.leader}` : NO_LEADER_TEXT);
      case 'leadershipLost':
        return new HttpError(500, 'leadership lost while committing log');
      case 'outcomeUnknown':
        return new HttpError(500, err.message);
      case 'overwritten':
        return new HttpError(500, 'leadership lost while committing log: the write was discarded');
      case 'transferInProgress':
        return new HttpError(500, 'leadership transfer in progress');
      case 'stopped':
        return new HttpError(503, 'server is shutting down');
    }
  }
  if (err instanceof ReadIndexError) {
    if (err.reason === 'noLeader') return new HttpError(500, NO_LEADER_TEXT);
    if (err.reason === 'stopped') return new HttpError(503, 'server is shutting down');
    return new HttpError(500, err.message);
  }
  if (err instanceof ClusterError) return clusterErrorToHttp(err);
  const fastifyErr = err as { statusCode?: number; message?: string; code?: string };
  if (typeof fastifyErr.statusCode === 'number' && fastifyErr.statusCode >= 400 && fastifyErr.statusCode < 500) {
    return new HttpError(fastifyErr.statusCode, fastifyErr.message ?? 'Bad request');
  }
  return new HttpError(500, err instanceof Error ? err.message : String(err));
}

/**
 * ClusterError → HTTP status and text (Konsul's /v1/cluster API; the operator API keeps Consul's
 * statuses in its own plugin). Operations that reach another server answer the gateway statuses: 502 when it could not be reached, 504 when it did not answer in time.
 */
export function clusterErrorToHttp(err: ClusterError): HttpError {
  switch (err.code) {
    case 'notFound':
      return new HttpError(404, err.message);
    case 'badRequest':
      return new HttpError(400, err.message);
    case 'conflict':
      return new HttpError(409, err.message);
    case 'noLeader':
      // Consul's exact text: clients (consul-template, Vault) match on it.
      return new HttpError(500, NO_LEADER_TEXT);
    case 'unreachable':
      return new HttpError(502, err.message);
    case 'timeout':
      return new HttpError(504, err.message);
  }
}
