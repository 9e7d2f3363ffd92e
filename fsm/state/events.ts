// The events table: the most recent user events (/v1/event), in the order they were fired.
//
// Consul gossips events and each agent keeps the last 256 it received in a ring buffer
// (agent/user_event.go). Konsul replicates them through Raft instead, so every server holds the same
// ring, in the same order, and it survives restarts and snapshots. See docs/adr/0009-events.md.
//
// Event IDs: the proposer picks a random UUID; the table then fixes its last 64 bits so that
// Consul's `uuidToUint64` of the ID (first 64 bits XOR last 64 bits, agent/event_endpoint.go) is the
// Raft index of the fire. /v1/event/list answers that value as X-Consul-Index, as Consul does, and
// so the index is monotonic (the npm client's watch wants that) while Go clients, which find the
// events newer than their index with `IDToIndex(ID) == lastIndex`, keep working.

import { encodeBase64 } from '../base64.ts';

/** Consul's agents keep this many events (agent.go: eventBuf of 256). */
export const EVENT_RING_CAPACITY = 256;

/**
 * Konsul's limits. Consul's gossip caps a whole event near 512 bytes ("keep the payload under 100
 * bytes"); Raft carries more, but every server keeps 256 events in memory and in every snapshot.
 */
export const MAX_EVENT_PAYLOAD_BYTES = 64 * 1024;
export const MAX_EVENT_NAME_LENGTH = 1024;
export const MAX_EVENT_FILTER_LENGTH = 1024;

/** Consul's userEventMaxVersion. */
export const USER_EVENT_VERSION = 1;

export interface UserEvent {
  readonly ID: string;
  readonly Name: string;
  /** Empty when the event has no payload (Consul answers null). */
  readonly Payload: Uint8Array;
  readonly NodeFilter: string;
  readonly ServiceFilter: string;
  readonly TagFilter: string;
  readonly Version: number;
  /** Lamport time: 1 for the first event ever fired in the cluster, then +1 per event. */
  readonly LTime: number;
  /** Raft index of the fire (uuidToUint64(ID) equals it). */
  readonly Index: number;
}

export interface EventFire {
  /** The proposer's random UUID (its first 64 bits are kept). */
  readonly proposedId: string;
  readonly name: string;
  readonly payload: Uint8Array;
  readonly nodeFilter: string;
  readonly serviceFilter: string;
  readonly tagFilter: string;
}

export interface EventsTableDump {
  readonly index: number;
  /** The highest LTime handed out (kept even when its event left the ring). */
  readonly lastLTime: number;
  /** Oldest first; at most EVENT_RING_CAPACITY. */
  readonly events: readonly UserEvent[];
}

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

export function isUuid(text: string): boolean {
  return UUID.test(text);
}

/** Consul's uuidToUint64: the UUID's first 64 bits XOR its last 64 bits. */
export function uuidToUint64(uuid: string): bigint {
  const hex = uuid.replace(/-/g, '');
  return BigInt(`0x${hex.slice(0, 16)}`) ^ BigInt(`0x${hex.slice(16, 32)}`);
}

/** The ID an event fired at `index` gets: the proposed UUID's first 64 bits, and uuidToUint64 = index. */
export function eventIdAt(proposedId: string, index: number): string {
  const hex = proposedId.replace(/-/g, '');
  const high = BigInt(`0x${hex.slice(0, 16)}`);
  const low = (high ^ BigInt(index)).toString(16).padStart(16, '0');
  const all = hex.slice(0, 16) + low;
  return `${all.slice(0, 8)}-${all.slice(8, 12)}-${all.slice(12, 16)}-${all.slice(16, 20)}-${all.slice(20)}`;
}

export class EventsTable {
  private ring: UserEvent[] = [];
  private tableIndex = 0;
  private lastLTime = 0;

  /** The last index at which an event was fired (or the table was restored). */
  index(): number {
    return this.tableIndex;
  }

  get size(): number {
    return this.ring.length;
  }

  /** The events in the ring, oldest first; only those called `name` when it is given (and not ''). */
  list(name?: string): UserEvent[] {
    return name ? this.ring.filter((e) => e.Name === name) : this.ring.slice();
  }

  /** Records an event fired at Raft index `index`; the oldest event leaves a full ring. */
  fire(index: number, fire: EventFire): UserEvent {
    this.lastLTime += 1;
    const event: UserEvent = {
      ID: eventIdAt(fire.proposedId, index),
      Name: fire.name,
      Payload: fire.payload,
      NodeFilter: fire.nodeFilter,
      ServiceFilter: fire.serviceFilter,
      TagFilter: fire.tagFilter,
      Version: USER_EVENT_VERSION,
      LTime: this.lastLTime,
      Index: index,
    };
    this.ring.push(event);
    if (this.ring.length > EVENT_RING_CAPACITY) this.ring.shift();
    this.tableIndex = index;
    return event;
  }

  dump(): EventsTableDump {
    return { index: this.tableIndex, lastLTime: this.lastLTime, events: this.ring.slice() };
  }

  /** Replaces the whole contents (the dump is checked by the snapshot reader). */
  load(dump: EventsTableDump): void {
    this.ring = dump.events.slice(-EVENT_RING_CAPACITY);
    this.tableIndex = dump.index;
    this.lastLTime = dump.lastLTime;
  }
}

/** An event as the API shows it and as the FSM answers a fire (JSON-safe: Payload base64 or null). */
export interface UserEventJson {
  readonly ID: string;
  readonly Name: string;
  readonly Payload: string | null;
  readonly NodeFilter: string;
  readonly ServiceFilter: string;
  readonly TagFilter: string;
  readonly Version: number;
  readonly LTime: number;
}

/** The FSM's answer to an eventFire command. */
export interface EventFireResult {
  readonly kind: 'event';
  readonly event: UserEventJson;
}

export function userEventJson(event: UserEvent): UserEventJson {
  return {
    ID: event.ID,
    Name: event.Name,
    Payload: event.Payload.length > 0 ? encodeBase64(event.Payload) : null,
    NodeFilter: event.NodeFilter,
    ServiceFilter: event.ServiceFilter,
    TagFilter: event.TagFilter,
    Version: event.Version,
    LTime: event.LTime,
  };
}
