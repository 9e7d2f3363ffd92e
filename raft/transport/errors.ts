// Errors of the server-to-server transport. Both are expected outcomes (a peer is down, a peer sent
// garbage), so callers branch on `code` instead of parsing messages.

/** Bytes from the wire that are not a valid frame: the connection that carried them is closed. */
export class TransportCodecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TransportCodecError';
  }
}

export type TransportErrorCode =
  /** The address could not be dialled (refused, timed out, in backoff, unknown id). Nothing was sent. */
  | 'unreachable'
  /** The connection dropped after the request may have been written: its outcome is unknown. */
  | 'connectionLost'
  /** No response within the timeout: its outcome is unknown. */
  | 'timeout'
  /** The remote handler threw; `message` and `remoteCode` are the thrower's. */
  | 'remote'
  /** This transport is stopped. */
  | 'stopped'
  /** The caller's AbortSignal fired. */
  | 'aborted';

export class TransportError extends Error {
  readonly code: TransportErrorCode;
  /** The remote error's `code` property, when it was a string (only with code 'remote'). */
  readonly remoteCode: string | undefined;

  constructor(code: TransportErrorCode, message: string, remoteCode?: string) {
    super(message);
    this.name = 'TransportError';
    this.code = code;
    this.remoteCode = remoteCode;
  }
}
