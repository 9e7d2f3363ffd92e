// A fault-injecting TCP proxy for server-to-server (RPC) traffic in cluster integration tests.
//
// Every server advertises its proxy's address instead of its real RPC address, so every connection
// another server opens to it passes through the proxy. Servers bind the source address of their
// outbound connections to their own RPC host (127.0.0.11, 127.0.0.12, ...), so the proxy knows which
// server is *sending* from the connection's source IP, and which one is receiving from the proxy it
// arrived at.
//
// A link from→to is the set of TCP connections `from` opened to `to`. Blocking it affects both byte
// directions on those connections (a proxy cannot tell a request from a reply on one stream), so a
// one-way block(from, to) is only an approximation of a one-way network fault; partition() and
// isolate() block both links between each pair, which is the usual case.
//
// Modes:
//  - 'reset': existing connections of the link are closed at once, new ones are accepted and closed
//    at once, like a refused connection: the sender learns about the fault immediately. (Closed,
//    not RST: Node 20's socket.resetAndDestroy() leaks the handle when the peer has reset the
//    connection first, and the leaked handle keeps the test process from ever exiting.)
//  - 'blackhole': sockets stay open but nothing is forwarded either way, like a dropped link: the
//    sender's writes back up and its requests time out. New connections are accepted and held
//    without dialling the server. Healing forwards whatever was held back, late, as TCP would
//    after a link comes back; nothing is ever dropped from the middle of a stream (which would
//    corrupt the framing, something no real network does to a TCP stream).
import net from 'node:net';

export type FaultMode = 'reset' | 'blackhole';

/** Matches every node on that side of a rule, including connections from unknown source IPs. */
export const ANY = '*';

export interface HostPort {
  readonly host: string;
  readonly port: number;
}

export interface ProxyStats {
  /** Connections accepted since the proxy started. */
  readonly accepted: number;
  /** Connections open now. */
  readonly open: number;
  /** Connections closed because of a 'reset' rule. */
  readonly reset: number;
  /** Open connections currently held by a 'blackhole' rule. */
  readonly held: number;
  /** Bytes forwarded, both directions. */
  readonly bytes: number;
}

/** Decides the fault mode for a link; null = forward normally. */
export type RuleLookup = (from: string, to: string) => FaultMode | null;

/** Strips the IPv4-mapped IPv6 prefix ("::ffff:127.0.0.11" → "127.0.0.11"). */
function plainIp(address: string | undefined): string {
  if (address === undefined) return '';
  return address.startsWith('::ffff:') ? address.slice(7) : address;
}

/** One proxied connection: the socket the sender opened, and ours to the server. */
class Link {
  readonly from: string;
  readonly downstream: net.Socket;
  upstream: net.Socket | null = null;
  /** Forwarding stopped by a blackhole rule. */
  held = false;
  closed = false;
  /** Bytes the sender wrote before the upstream connection was up. */
  readonly early: Buffer[] = [];
  /** Directions whose receiving socket is waiting for 'drain'. */
  readonly draining = new Set<'up' | 'down'>();

  constructor(from: string, downstream: net.Socket) {
    this.from = from;
    this.downstream = downstream;
  }
}

/**
 * The proxy in front of one server's RPC listener. Use {@link FaultNetwork} to create proxies and
 * set rules; this class only applies the rule lookup it was given.
 */
export class FaultProxy {
  /** The node behind this proxy: the receiving side of every connection it accepts. */
  readonly node: string;
  readonly #server: net.Server;
  readonly #identify: (ip: string) => string;
  readonly #rule: RuleLookup;
  readonly #links = new Set<Link>();
  /** Every socket not yet closed, including those of links already closing (see close()). */
  readonly #sockets = new Set<net.Socket>();
  #target: HostPort | null = null;
  #address: HostPort | null = null;
  #accepted = 0;
  #reset = 0;
  #bytes = 0;
  #closed = false;

  constructor(node: string, identify: (ip: string) => string, rule: RuleLookup) {
    this.node = node;
    this.#identify = identify;
    this.#rule = rule;
    this.#server = net.createServer({ allowHalfOpen: false, noDelay: true }, (socket) => this.#accept(socket));
    // A listen error after start (none expected) must not crash the test process.
    this.#server.on('error', () => {});
  }

  /** Starts listening on 127.0.0.1 (an ephemeral port unless one is given). */
  async listen(port = 0, host = '127.0.0.1'): Promise<HostPort> {
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error): void => reject(err);
      this.#server.once('error', onError);
      this.#server.listen({ port, host, exclusive: true }, () => {
        this.#server.off('error', onError);
        resolve();
      });
    });
    const a = this.#server.address() as net.AddressInfo;
    this.#address = { host: a.address, port: a.port };
    return this.#address;
  }

  /** The address servers dial ("host:port" form via {@link addressText}). */
  get address(): HostPort {
    if (this.#address === null) throw new Error(`proxy for ${this.node} is not listening`);
    return this.#address;
  }

  get addressText(): string {
    return `${this.address.host}:${this.address.port}`;
  }

  /** Where to forward to: the server's real RPC address. Null = refuse (reset) new connections. */
  setTarget(target: HostPort | null): void {
    this.#target = target;
  }

  get target(): HostPort | null {
    return this.#target;
  }

  stats(): ProxyStats {
    let held = 0;
    for (const l of this.#links) if (l.held) held++;
    return { accepted: this.#accepted, open: this.#links.size, reset: this.#reset, held, bytes: this.#bytes };
  }

  /** Re-evaluates the rules for every open connection (called after a rule changed). */
  applyRules(): void {
    for (const link of [...this.#links]) this.#enforce(link);
  }

  /**
   * Stops listening and destroys every socket, including those still flushing after a clean end:
   * a socket left with a write its peer never reads would keep the test process from exiting.
   */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    for (const link of [...this.#links]) this.#close(link);
    for (const s of this.#sockets) s.destroy();
    this.#sockets.clear();
    await new Promise<void>((resolve) => this.#server.close(() => resolve()));
  }

  #accept(socket: net.Socket): void {
    this.#accepted++;
    const link = new Link(this.#identify(plainIp(socket.remoteAddress)), socket);
    this.#links.add(link);
    this.#watch(link, socket, () => link.upstream);
    socket.on('data', (chunk: Buffer) => this.#forward(link, chunk, 'up'));
    if (this.#closed || this.#target === null) return this.#close(link);
    if (this.#rule(link.from, this.node) === 'reset') {
      this.#reset++;
      return this.#close(link);
    }
    this.#enforce(link);
    if (!link.closed && !link.held) this.#dial(link);
  }

  /**
   * Closing: an error on either socket resets both. A clean end (FIN) is passed on to the other
   * socket after what it still has to write (a server that exits closes its sockets this way).
   */
  #watch(link: Link, socket: net.Socket, other: () => net.Socket | null): void {
    this.#sockets.add(socket);
    if (this.#closed) socket.destroy();
    socket.on('error', () => this.#close(link));
    socket.on('close', () => this.#sockets.delete(socket));
    socket.on('close', () => {
      const o = other();
      if (link.closed) return;
      if (o === null || o.destroyed || o.connecting) return this.#close(link);
      this.#links.delete(link);
      link.closed = true;
      o.end();
      setTimeout(() => o.destroy(), 2000).unref();
    });
  }

  #dial(link: Link): void {
    const target = this.#target;
    if (target === null) return this.#close(link);
    const up = net.connect({ host: target.host, port: target.port, noDelay: true });
    link.upstream = up;
    this.#watch(link, up, () => link.downstream);
    up.on('connect', () => {
      if (link.closed) return;
      const early = link.early.splice(0);
      for (const chunk of early) this.#write(link, 'up', chunk);
      this.#flowControl(link);
    });
    up.on('data', (chunk: Buffer) => this.#forward(link, chunk, 'down'));
    // Until connected, the sender's bytes wait in `early` (reading stops after the first chunk).
    this.#flowControl(link);
  }

  #forward(link: Link, chunk: Buffer, direction: 'up' | 'down'): void {
    if (link.closed) return;
    const up = link.upstream;
    if (direction === 'up' && (up === null || up.connecting)) {
      link.early.push(chunk);
      link.downstream.pause();
      return;
    }
    this.#write(link, direction, chunk);
  }

  /** Writes a chunk on; when the receiving socket's buffer is full, stop reading until it drains. */
  #write(link: Link, direction: 'up' | 'down', chunk: Buffer): void {
    const to = direction === 'up' ? link.upstream! : link.downstream;
    this.#bytes += chunk.length;
    if (!to.write(chunk) && !link.draining.has(direction)) {
      link.draining.add(direction);
      to.once('drain', () => {
        link.draining.delete(direction);
        this.#flowControl(link);
      });
      this.#flowControl(link);
    }
  }

  /** Sets both sockets' reading state from the link's state (held, connecting, backpressure). */
  #flowControl(link: Link): void {
    if (link.closed) return;
    const up = link.upstream;
    const upReady = up !== null && !up.connecting;
    if (!link.held && upReady && !link.draining.has('up')) link.downstream.resume();
    else link.downstream.pause();
    if (up !== null) {
      if (!link.held && upReady && !link.draining.has('down')) up.resume();
      else up.pause();
    }
  }

  #enforce(link: Link): void {
    if (link.closed) return;
    const mode = this.#rule(link.from, this.node);
    if (mode === 'reset') {
      this.#reset++;
      return this.#close(link);
    }
    const wasHeld = link.held;
    link.held = mode === 'blackhole';
    if (wasHeld && !link.held && link.upstream === null) {
      // Held since it was accepted: dial the server now.
      this.#dial(link);
      return;
    }
    this.#flowControl(link);
  }

  /** Closes both sockets at once, dropping whatever they still hold. */
  #close(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    this.#links.delete(link);
    link.early.length = 0;
    link.downstream.destroy();
    link.upstream?.destroy();
  }
}

export interface NodeAddressing {
  /** The node name used in rules. */
  readonly name: string;
  /** The source IP its outbound server-to-server connections come from. */
  readonly ip: string;
}

interface Rule {
  readonly from: string;
  readonly to: string;
  readonly mode: FaultMode;
}

/**
 * The proxies of one cluster and the fault rules between its nodes. Rules name nodes; {@link ANY}
 * matches every node (and unknown source IPs).
 */
export class FaultNetwork {
  readonly #proxies = new Map<string, FaultProxy>();
  readonly #ipToNode = new Map<string, string>();
  #rules: Rule[] = [];

  /** Creates and starts the proxy in front of `node`'s RPC listener; its target is set later. */
  async addNode(node: NodeAddressing, listenPort = 0): Promise<FaultProxy> {
    if (this.#proxies.has(node.name)) throw new Error(`node ${node.name} already has a proxy`);
    if (node.name === ANY) throw new Error(`"${ANY}" cannot be a node name`);
    const taken = this.#ipToNode.get(node.ip);
    if (taken !== undefined) throw new Error(`source IP ${node.ip} is already used by ${taken}`);
    this.#ipToNode.set(node.ip, node.name);
    const proxy = new FaultProxy(node.name, (ip) => this.nodeForIp(ip), (from, to) => this.ruleFor(from, to));
    this.#proxies.set(node.name, proxy);
    await proxy.listen(listenPort);
    return proxy;
  }

  proxy(node: string): FaultProxy {
    const p = this.#proxies.get(node);
    if (p === undefined) throw new Error(`no proxy for node ${node}`);
    return p;
  }

  get nodes(): string[] {
    return [...this.#proxies.keys()];
  }

  /** The node a source IP belongs to; unknown IPs are named "?IP" (matched only by ANY rules). */
  nodeForIp(ip: string): string {
    return this.#ipToNode.get(ip) ?? `?${ip}`;
  }

  /** The mode applying to link from→to ('reset' wins over 'blackhole'), or null. */
  ruleFor(from: string, to: string): FaultMode | null {
    let mode: FaultMode | null = null;
    for (const r of this.#rules) {
      if ((r.from === from || r.from === ANY) && (r.to === to || r.to === ANY)) {
        if (r.mode === 'reset') return 'reset';
        mode = r.mode;
      }
    }
    return mode;
  }

  /** Blocks the link from→to (either may be {@link ANY}); replaces an earlier rule for that pair. */
  block(from: string, to: string, mode: FaultMode = 'blackhole'): void {
    if (from === to && from !== ANY) throw new Error(`cannot block ${from} from itself`);
    this.#known(from);
    this.#known(to);
    this.#rules = this.#rules.filter((r) => !(r.from === from && r.to === to));
    this.#rules.push({ from, to, mode });
    this.#apply();
  }

  /**
   * heal(): removes every rule. heal(node): every rule naming `node` on either side.
   * heal(from, to): the rule for exactly that pair (as given to block()).
   */
  heal(from?: string, to?: string): void {
    if (from === undefined) this.#rules = [];
    else if (to === undefined) this.#rules = this.#rules.filter((r) => r.from !== from && r.to !== from);
    else this.#rules = this.#rules.filter((r) => !(r.from === from && r.to === to));
    this.#apply();
  }

  /** Cuts `node` off from everyone, both directions. */
  isolate(node: string, mode: FaultMode = 'blackhole'): void {
    this.#known(node);
    this.#rules = this.#rules.filter((r) => !(r.from === node && r.to === ANY) && !(r.from === ANY && r.to === node));
    this.#rules.push({ from: node, to: ANY, mode }, { from: ANY, to: node, mode });
    this.#apply();
  }

  /** Blocks both directions between every node of `a` and every node of `b` (default: all others). */
  partition(a: readonly string[], b?: readonly string[], mode: FaultMode = 'blackhole'): void {
    const other = b ?? this.nodes.filter((n) => !a.includes(n));
    for (const x of a) {
      for (const y of other) {
        if (x === y) throw new Error(`node ${x} is on both sides of the partition`);
        this.#known(x);
        this.#known(y);
        this.#rules = this.#rules.filter((r) => !(r.from === x && r.to === y) && !(r.from === y && r.to === x));
        this.#rules.push({ from: x, to: y, mode }, { from: y, to: x, mode });
      }
    }
    this.#apply();
  }

  rules(): readonly Rule[] {
    return [...this.#rules];
  }

  async close(): Promise<void> {
    await Promise.all([...this.#proxies.values()].map((p) => p.close()));
  }

  #known(node: string): void {
    if (node !== ANY && !this.#proxies.has(node)) throw new Error(`unknown node ${node} (known: ${this.nodes.join(', ')})`);
  }

  #apply(): void {
    for (const p of this.#proxies.values()) p.applyRules();
  }
}
