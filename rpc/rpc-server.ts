// The server side of the server RPC: answers the request frames that arrive on the transport's
// inbound connections (raft/transport/raft-transport.ts hands them over) with a response, or an
// error response carrying the thrown error's message and its string `code` (a KonsulError's code,
// a TransportError's...).
import type { PeerHello } from '../raft/transport/codec.ts';
import { LENGTH_PREFIX_BYTES, encodeFrame } from '../raft/transport/codec.ts';
import type { Frame } from '../raft/transport/codec.ts';
import type { InboundRequest } from '../raft/transport/raft-transport.ts';

/** Answers one request; a thrown error goes back as an error response. */
export type RequestHandler = (from: PeerHello, method: string, body: Uint8Array) => Promise<Uint8Array>;

/** Runs the handler and writes its answer through `reply` (which drops it if the connection closed). */
export function answerRequest(handler: RequestHandler, maxFrameBytes: number, from: PeerHello, request: InboundRequest, reply: (response: Buffer) => void): void {
  const { id } = request;
  let result: Promise<Uint8Array>;
  try {
    result = handler(from, request.method, request.body);
  } catch (err) {
    result = Promise.reject(err);
  }
  result.then(
    (response) => reply(encodeResponse({ kind: 'response', id, body: response }, maxFrameBytes)),
    (err: unknown) => {
      const code = (err as { code?: unknown } | null)?.code;
      const message = err instanceof Error ? err.message : String(err);
      reply(encodeResponse({ kind: 'errorResponse', id, message, code: typeof code === 'string' ? code : undefined }, maxFrameBytes));
    },
  );
}

function encodeResponse(frame: Frame & { id: number }, maxFrameBytes: number): Buffer {
  try {
    const bytes = encodeFrame(frame);
    if (bytes.length - LENGTH_PREFIX_BYTES > maxFrameBytes) throw new RangeError(`response of ${bytes.length} bytes exceeds maxFrameBytes`);
    return bytes;
  } catch (err) {
    // The caller must hear something, or it waits for its timeout.
    return encodeFrame({ kind: 'errorResponse', id: frame.id, message: `cannot send the response: ${err instanceof Error ? err.message : String(err)}`, code: 'responseTooLarge' });
  }
}
