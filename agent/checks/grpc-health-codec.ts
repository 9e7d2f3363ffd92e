// The two messages of grpc.health.v1.Health/Check, encoded by hand (ADR 0014: no proto-loader at
// runtime for one string field and one enum):
//   message HealthCheckRequest  { string service = 1; }
//   message HealthCheckResponse { ServingStatus status = 1; }   // UNKNOWN 0, SERVING 1,
//                                                               // NOT_SERVING 2, SERVICE_UNKNOWN 3
// The decoder follows protobuf's rules: unknown fields of any wire type are skipped, the last
// occurrence of a field wins, a missing status is UNKNOWN.

export const HEALTH_CHECK_METHOD = '/grpc.health.v1.Health/Check';

export const SERVING_STATUS_NAMES = ['UNKNOWN', 'SERVING', 'NOT_SERVING', 'SERVICE_UNKNOWN'] as const;

function writeVarint(out: number[], value: number): void {
  let v = value;
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
}

export function encodeHealthCheckRequest(service: string): Buffer {
  if (service === '') return Buffer.alloc(0);
  const text = Buffer.from(service, 'utf8');
  const head: number[] = [0x0a]; // field 1, wire type 2 (length-delimited)
  writeVarint(head, text.length);
  return Buffer.concat([Buffer.from(head), text]);
}

/** Reads a varint at `offset`; answers the value and the next offset. Throws on truncated input. */
function readVarint(buf: Buffer, offset: number): [number, number] {
  let value = 0;
  let scale = 1;
  let i = offset;
  for (;;) {
    if (i >= buf.length) throw new Error('truncated varint');
    const byte = buf[i++]!;
    value += (byte & 0x7f) * scale;
    if ((byte & 0x80) === 0) return [value, i];
    scale *= 128;
    if (i - offset > 10) throw new Error('varint too long');
  }
}

/** The status number of a HealthCheckResponse (0 when absent). Throws on malformed input. */
export function decodeHealthCheckResponse(buf: Buffer): number {
  let status = 0;
  let i = 0;
  while (i < buf.length) {
    const [tag, afterTag] = readVarint(buf, i);
    i = afterTag;
    const field = Math.floor(tag / 8);
    const wireType = tag & 7;
    if (wireType === 0) {
      const [value, next] = readVarint(buf, i);
      i = next;
      // An enum is an int32 on the wire; negative values arrive as 10-byte varints (kept as is).
      if (field === 1) status = value;
    } else if (wireType === 2) {
      const [length, next] = readVarint(buf, i);
      i = next + length;
    } else if (wireType === 1) {
      i += 8;
    } else if (wireType === 5) {
      i += 4;
    } else {
      throw new Error(`unsupported wire type ${wireType}`);
    }
    if (i > buf.length) throw new Error('truncated field');
  }
  return status;
}

/** The enum's name as Go's String() prints it ("SERVING"; an unknown number prints as itself). */
export function servingStatusName(status: number): string {
  return SERVING_STATUS_NAMES[status] ?? String(status);
}
