// Test helpers for the DNS interface: queries built by dns2 (not by our encoder), `dig` run as a
// child process with bounded time, and raw UDP/TCP exchanges for malformed input.
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect } from 'node:net';
import dns2 from 'dns2';

export function clientQuery(name: string, type: number, options: { id?: number; edns?: number; opcode?: number } = {}): Buffer {
  const packet = new dns2.Packet();
  packet.header.id = options.id ?? 0x1234;
  packet.header.rd = 1;
  packet.header.opcode = options.opcode ?? 0;
  packet.questions.push({ name, type, class: 1 } as never);
  // dns2's bundled types predate its EDNS options argument.
  const edns = dns2.Packet.Resource.EDNS as unknown as (rdata: unknown[], options: { udpPayloadSize: number }) => never;
  if (options.edns !== undefined) packet.additionals.push(edns([], { udpPayloadSize: options.edns }));
  return packet.toBuffer();
}

/** A message as dns2's decoder (not ours) reads it, loosely typed for assertions. */
export interface WireMessage {
  header: Record<string, number>;
  questions: { name: string; type: number; class: number }[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  answers: Record<string, any>[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  authorities: Record<string, any>[];
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  additionals: Record<string, any>[];
}

export function parseWire(message: Buffer): WireMessage {
  return dns2.Packet.parse(message) as unknown as WireMessage;
}

export interface DigResult {
  readonly status: string;
  readonly flags: readonly string[];
  /** Record lines split into fields: name, ttl, class, type, data... */
  readonly answer: readonly string[][];
  readonly authority: readonly string[][];
  readonly additional: readonly string[][];
  /** "UDP" or "TCP", from the SERVER line. */
  readonly transport: string;
  readonly raw: string;
}

/** Runs `dig @127.0.0.1 -p PORT args...` with one try and a 2 s timeout per try. */
export function dig(port: number, args: readonly string[]): Promise<DigResult> {
  return new Promise((resolve, reject) => {
    execFile('dig', [`@127.0.0.1`, '-p', String(port), '+time=2', '+tries=1', ...args], { timeout: 15_000 }, (err, stdout) => {
      if (err && !stdout) {
        reject(err);
        return;
      }
      resolve(parseDig(stdout));
    });
  });
}

export function parseDig(text: string): DigResult {
  const sections: Record<string, string[][]> = { ANSWER: [], AUTHORITY: [], ADDITIONAL: [] };
  let current: string | null = null;
  for (const line of text.split('\n')) {
    const header = /^;; (\w+) SECTION:/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (line.trim() === '' || line.startsWith(';')) {
      if (line.trim() === '') current = null;
      continue;
    }
    if (current !== null && sections[current]) sections[current]!.push(line.trim().split(/\s+/));
  }
  return {
    status: /status: (\w+)/.exec(text)?.[1] ?? 'NO REPLY',
    flags: (/;; flags: ([^;]*);/.exec(text)?.[1] ?? '').trim().split(/\s+/).filter(Boolean),
    answer: sections.ANSWER!,
    authority: sections.AUTHORITY!,
    additional: sections.ADDITIONAL!,
    transport: /;; SERVER: .*\((\w+)\)/.exec(text)?.[1] ?? '',
    raw: text,
  };
}

/** Sends one datagram; resolves with the first reply, or null after `waitMs`. */
export function udpExchange(port: number, message: Buffer, waitMs = 1000): Promise<Buffer | null> {
  return new Promise((resolve) => {
    const socket = createSocket('udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(null);
    }, waitMs);
    socket.on('message', (reply) => {
      clearTimeout(timer);
      socket.close();
      resolve(reply);
    });
    socket.on('error', () => undefined);
    socket.send(message, port, '127.0.0.1');
  });
}

/**
 * Writes raw bytes to a TCP connection and collects what comes back until the server closes or
 * `waitMs` passes; answers the length-prefixed messages received and whether the server closed.
 */
export function tcpExchange(port: number, bytes: Buffer, options: { waitMs?: number; endAfterWrite?: boolean } = {}): Promise<{ messages: Buffer[]; closedByServer: boolean }> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    let closedByServer = false;
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      const messages: Buffer[] = [];
      let rest = received;
      while (rest.length >= 2 && rest.length >= 2 + rest.readUInt16BE(0)) {
        messages.push(rest.subarray(2, 2 + rest.readUInt16BE(0)));
        rest = rest.subarray(2 + rest.readUInt16BE(0));
      }
      resolve({ messages, closedByServer });
    };
    const timer = setTimeout(finish, options.waitMs ?? 1000);
    socket.on('data', (d: Buffer) => (received = Buffer.concat([received, d])));
    socket.on('close', () => {
      closedByServer = true;
      finish();
    });
    socket.on('error', () => undefined);
    socket.on('connect', () => {
      socket.write(bytes);
      if (options.endAfterWrite) socket.end();
    });
  });
}

/** A length-prefixed TCP message. */
export function framed(message: Buffer): Buffer {
  const prefix = Buffer.alloc(2);
  prefix.writeUInt16BE(message.length);
  return Buffer.concat([prefix, message]);
}
