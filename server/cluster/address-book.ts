// Where each server can be reached. Raft knows servers only by id; the addresses come from the
// servers themselves (every RPC exchange carries the sender's addresses and the ones it knows) and
// are kept in `peers.json` in the data directory, so a restarted server can dial its peers before
// anyone has dialled it.
import { readFileSync, renameSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface ServerAddresses {
  readonly id: string;
  /** Server-to-server address "host:port". */
  readonly rpcAddr: string;
  /** HTTP API address "host:port" ('' when not known). */
  readonly httpAddr: string;
}

export class AddressBook {
  private readonly entries = new Map<string, ServerAddresses>();
  private readonly file: string | null;

  /** `dataDir` null keeps the book in memory only. */
  constructor(dataDir: string | null) {
    this.file = dataDir === null ? null : join(dataDir, 'peers.json');
    if (this.file) this.load(this.file);
  }

  get(id: string): ServerAddresses | undefined {
    return this.entries.get(id);
  }

  all(): ServerAddresses[] {
    return [...this.entries.values()].sort((a, b) => a.id.localeCompare(b.id));
  }

  /** The id of the server advertising `rpcAddr`, if known. */
  idAt(rpcAddr: string): string | undefined {
    for (const e of this.entries.values()) if (e.rpcAddr === rpcAddr) return e.id;
    return undefined;
  }

  /** Records what a server says about itself (or what a peer relays); true when something changed. */
  learn(addresses: ServerAddresses): boolean {
    if (!addresses.id || !addresses.rpcAddr) return false;
    const known = this.entries.get(addresses.id);
    // A relayed entry without an HTTP address must not erase one learned first-hand.
    const httpAddr = addresses.httpAddr || known?.httpAddr || '';
    if (known && known.rpcAddr === addresses.rpcAddr && known.httpAddr === httpAddr) return false;
    // Another id on the same address is a server that was replaced (new node name, same host).
    for (const [id, e] of this.entries) if (id !== addresses.id && e.rpcAddr === addresses.rpcAddr) this.entries.delete(id);
    this.entries.set(addresses.id, { id: addresses.id, rpcAddr: addresses.rpcAddr, httpAddr });
    this.persist();
    return true;
  }

  private load(file: string): void {
    let raw: unknown;
    try {
      raw = JSON.parse(readFileSync(file, 'utf8'));
    } catch {
      return; // No file yet (a new server) or a torn write: the peers will tell us again.
    }
    if (!Array.isArray(raw)) return;
    for (const e of raw as Partial<ServerAddresses>[]) {
      if (typeof e?.id === 'string' && typeof e.rpcAddr === 'string') {
        this.entries.set(e.id, { id: e.id, rpcAddr: e.rpcAddr, httpAddr: typeof e.httpAddr === 'string' ? e.httpAddr : '' });
      }
    }
  }

  private persist(): void {
    if (!this.file) return;
    const tmp = `${this.file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.all(), null, 1));
    renameSync(tmp, this.file);
  }
}
