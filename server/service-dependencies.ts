// Service dependencies (seed backlog BACK-025): a service definition may name the services it depends
// on (`Dependencies`, a Konsul extension of Consul's service definition). This module builds the
// graph over service names from the catalog and analyses it: cycles, depth, and impact ("what
// depends on X", directly and transitively). Pure: the routes feed it the catalog's instances.
//
// - A service's dependencies are the union over its instances'. Names compare case-insensitively,
//   as service names do in the catalog; a name is shown as its first instance spells it.
// - A dependency that no instance provides is still a node of the graph, with Registered: false.
// - Cycles are the strongly connected components with more than one service, or a service that
//   depends on itself (Tarjan's algorithm, iterative). Each is reported as a closed path
//   ["a", "b", "a"] through all of its members, ordered from its smallest name.
// - Depth is the longest chain of dependencies below a service (0 for none), computed on the graph
//   of components, so the services of a cycle share one depth.

export interface DependencyInstance {
  readonly Service: string;
  readonly Dependencies: readonly string[];
}

export interface ServiceDependencyNode {
  readonly Name: string;
  readonly Registered: boolean;
  readonly Instances: number;
  /** Direct dependencies, sorted. */
  readonly Dependencies: string[];
  /** Direct dependents, sorted. */
  readonly Dependents: string[];
  readonly Depth: number;
  readonly InCycle: boolean;
}

export interface DependencyGraph {
  readonly Services: ServiceDependencyNode[];
  readonly Edges: { From: string; To: string }[];
  readonly Cycles: string[][];
  readonly MaxDepth: number;
}

export interface ReachedService {
  readonly Service: string;
  /** Edges from the queried service (1 = direct). */
  readonly Distance: number;
}

export interface ServiceDependencyReport {
  readonly Service: string;
  readonly Registered: boolean;
  readonly Instances: number;
  readonly Dependencies: string[];
  readonly TransitiveDependencies: ReachedService[];
  /** Dependencies (direct or transitive) that no instance provides. */
  readonly Missing: string[];
  readonly Dependents: string[];
  /** Impact analysis: every service that depends on this one, directly or not. */
  readonly TransitiveDependents: ReachedService[];
  readonly Depth: number;
  readonly InCycle: boolean;
  /** The cycles this service is part of. */
  readonly Cycles: string[][];
}

interface Vertex {
  name: string;
  registered: boolean;
  instances: number;
  out: Set<string>;
  in: Set<string>;
}

const fold = (s: string): string => s.toLowerCase();
const byName = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

export class ServiceDependencies {
  private readonly vertices = new Map<string, Vertex>();
  private readonly component = new Map<string, number>();
  private readonly cycles: string[][] = [];
  private readonly depth = new Map<string, number>();

  constructor(instances: Iterable<DependencyInstance>) {
    for (const instance of instances) {
      const v = this.vertex(instance.Service);
      v.registered = true;
      v.instances++;
      for (const dependency of instance.Dependencies) {
        const d = this.vertex(dependency);
        v.out.add(fold(dependency));
        d.in.add(fold(instance.Service));
      }
    }
    this.analyse();
  }

  has(name: string): boolean {
    return this.vertices.has(fold(name));
  }

  graph(): DependencyGraph {
    const keys = [...this.vertices.keys()].sort(byName);
    const services = keys.map((k) => this.node(k));
    const edges = keys.flatMap((k) => [...this.vertices.get(k)!.out].sort(byName).map((to) => ({ From: this.name(k), To: this.name(to) })));
    return { Services: services, Edges: edges, Cycles: this.cycles, MaxDepth: Math.max(0, ...services.map((s) => s.Depth)) };
  }

  report(name: string): ServiceDependencyReport | undefined {
    const key = fold(name);
    const v = this.vertices.get(key);
    if (v === undefined) return undefined;
    const node = this.node(key);
    const forward = this.reach(key, 'out');
    return {
      Service: v.name,
      Registered: v.registered,
      Instances: v.instances,
      Dependencies: node.Dependencies,
      TransitiveDependencies: forward,
      Missing: forward.filter((r) => !this.vertices.get(fold(r.Service))!.registered).map((r) => r.Service),
      Dependents: node.Dependents,
      TransitiveDependents: this.reach(key, 'in'),
      Depth: node.Depth,
      InCycle: node.InCycle,
      Cycles: this.cycles.filter((cycle) => cycle.some((n) => fold(n) === key)),
    };
  }

  private vertex(name: string): Vertex {
    const key = fold(name);
    let v = this.vertices.get(key);
    if (v === undefined) {
      v = { name, registered: false, instances: 0, out: new Set(), in: new Set() };
      this.vertices.set(key, v);
    }
    return v;
  }

  private name(key: string): string {
    return this.vertices.get(key)!.name;
  }

  private node(key: string): ServiceDependencyNode {
    const v = this.vertices.get(key)!;
    return {
      Name: v.name,
      Registered: v.registered,
      Instances: v.instances,
      Dependencies: [...v.out].sort(byName).map((k) => this.name(k)),
      Dependents: [...v.in].sort(byName).map((k) => this.name(k)),
      Depth: this.depth.get(key) ?? 0,
      InCycle: this.inCycle(key),
    };
  }

  private inCycle(key: string): boolean {
    const v = this.vertices.get(key)!;
    if (v.out.has(key)) return true;
    const c = this.component.get(key);
    let members = 0;
    for (const other of this.component.values()) if (other === c) members++;
    return members > 1;
  }

  /** Breadth-first over `direction` edges: every service reached, with its distance. */
  private reach(start: string, direction: 'out' | 'in'): ReachedService[] {
    const distance = new Map<string, number>([[start, 0]]);
    const queue = [start];
    for (let i = 0; i < queue.length; i++) {
      const key = queue[i]!;
      for (const next of [...this.vertices.get(key)![direction]].sort(byName)) {
        if (distance.has(next)) continue;
        distance.set(next, distance.get(key)! + 1);
        queue.push(next);
      }
    }
    distance.delete(start);
    return [...distance.entries()]
      .sort((a, b) => a[1] - b[1] || byName(a[0], b[0]))
      .map(([k, d]) => ({ Service: this.name(k), Distance: d }));
  }

  /** Tarjan's strongly connected components (iterative), cycles, and depths over the components. */
  private analyse(): void {
    const keys = [...this.vertices.keys()].sort(byName);
    const index = new Map<string, number>();
    const low = new Map<string, number>();
    const onStack = new Set<string>();
    const stack: string[] = [];
    const components: string[][] = [];
    let counter = 0;
    for (const root of keys) {
      if (index.has(root)) continue;
      const work: { key: string; edges: string[]; next: number }[] = [];
      const push = (key: string) => {
        index.set(key, counter);
        low.set(key, counter);
        counter++;
        stack.push(key);
        onStack.add(key);
        work.push({ key, edges: [...this.vertices.get(key)!.out].sort(byName), next: 0 });
      };
      push(root);
      while (work.length > 0) {
        const frame = work[work.length - 1]!;
        if (frame.next < frame.edges.length) {
          const to = frame.edges[frame.next++]!;
          if (!index.has(to)) push(to);
          else if (onStack.has(to)) low.set(frame.key, Math.min(low.get(frame.key)!, index.get(to)!));
          continue;
        }
        work.pop();
        const parent = work[work.length - 1];
        if (parent !== undefined) low.set(parent.key, Math.min(low.get(parent.key)!, low.get(frame.key)!));
        if (low.get(frame.key) === index.get(frame.key)) {
          const members: string[] = [];
          let member: string;
          do {
            member = stack.pop()!;
            onStack.delete(member);
            members.push(member);
          } while (member !== frame.key);
          components.push(members.sort(byName));
        }
      }
    }
    // Tarjan emits components in reverse topological order: dependencies before their dependents.
    components.forEach((members, i) => {
      for (const m of members) this.component.set(m, i);
    });
    const componentDepth: number[] = [];
    components.forEach((members, i) => {
      let d = 0;
      for (const m of members) {
        for (const to of this.vertices.get(m)!.out) {
          const c = this.component.get(to)!;
          if (c !== i) d = Math.max(d, componentDepth[c]! + 1);
        }
      }
      componentDepth[i] = d;
      for (const m of members) this.depth.set(m, d);
      if (members.length > 1 || this.vertices.get(members[0]!)!.out.has(members[0]!)) this.cycles.push(this.cyclePath(members));
    });
    this.cycles.sort((a, b) => byName(fold(a[0]!), fold(b[0]!)));
  }

  /** A closed path through every member of a component, from its smallest name. */
  private cyclePath(members: string[]): string[] {
    const inside = new Set(members);
    const start = members[0]!;
    if (members.length === 1) return [this.name(start), this.name(start)];
    // Walk to each unvisited member in turn along shortest paths inside the component, then home.
    const path = [start];
    const visited = new Set([start]);
    let at = start;
    // Inside a strongly connected component every member reaches every other, so each step finds one.
    while (visited.size < members.length || at !== start) {
      const targets = visited.size < members.length ? members.filter((m) => !visited.has(m)) : [start];
      const step = this.shortestPath(at, new Set(targets), inside);
      if (step.length === 0) break;
      for (const k of step) {
        path.push(k);
        visited.add(k);
      }
      at = path[path.length - 1]!;
    }
    return path.map((k) => this.name(k));
  }

  /** The shortest path (excluding `from`) to any of `targets`, inside `within`. */
  private shortestPath(from: string, targets: Set<string>, within: Set<string>): string[] {
    const previous = new Map<string, string>();
    const queue = [from];
    const seen = new Set([from]);
    for (let i = 0; i < queue.length; i++) {
      const key = queue[i]!;
      for (const next of [...this.vertices.get(key)!.out].sort(byName)) {
        if (!within.has(next) || seen.has(next)) continue;
        seen.add(next);
        previous.set(next, key);
        if (targets.has(next)) return this.unwind(from, next, previous);
        queue.push(next);
      }
    }
    return [];
  }

  private unwind(from: string, to: string, previous: Map<string, string>): string[] {
    const path: string[] = [];
    let at = to;
    while (at !== from) {
      path.push(at);
      at = previous.get(at)!;
    }
    return path.reverse();
  }
}
