// Dependency graph analysis: direct and transitive edges, missing services, impact, cycles, depth.
import t from 'tap';
import { ServiceDependencies } from './service-dependencies.ts';

const graph = (edges: Record<string, string[]>, instances: Record<string, number> = {}) =>
  new ServiceDependencies(
    Object.entries(edges).flatMap(([service, deps]) => Array.from({ length: instances[service] ?? 1 }, () => ({ Service: service, Dependencies: deps }))),
  );

t.test('dependencies, dependents, missing services, depth', async (t) => {
  const g = graph({ web: ['api', 'cdn'], api: ['db', 'cache'], db: [], cache: ['db'], batch: ['db'] }, { api: 3 });
  const api = g.report('api')!;
  t.same(api.Dependencies, ['cache', 'db']);
  t.same(api.Dependents, ['web']);
  t.equal(api.Instances, 3);
  t.equal(api.Depth, 2, 'api → cache → db');
  t.same(g.report('web')!.TransitiveDependencies, [
    { Service: 'api', Distance: 1 },
    { Service: 'cdn', Distance: 1 },
    { Service: 'cache', Distance: 2 },
    { Service: 'db', Distance: 2 },
  ]);
  t.same(g.report('web')!.Missing, ['cdn']);
  t.same(g.report('db')!.TransitiveDependents, [
    { Service: 'api', Distance: 1 },
    { Service: 'batch', Distance: 1 },
    { Service: 'cache', Distance: 1 },
    { Service: 'web', Distance: 2 },
  ], 'impact: what depends on db');
  t.match(g.report('cdn'), { Registered: false, Instances: 0, Dependents: ['web'] });
  t.equal(g.report('nowhere'), undefined);
  const whole = g.graph();
  t.equal(whole.MaxDepth, 3);
  t.same(whole.Cycles, []);
  t.equal(whole.Edges.length, 6);
});

t.test('cycles: strongly connected components and self loops', async (t) => {
  const g = graph({ a: ['b'], b: ['c'], c: ['a', 'd'], d: [], e: ['e'], f: ['a'] });
  const whole = g.graph();
  t.same(whole.Cycles, [['a', 'b', 'c', 'a'], ['e', 'e']]);
  t.ok(g.report('b')!.InCycle);
  t.same(g.report('b')!.Cycles, [['a', 'b', 'c', 'a']]);
  t.ok(g.report('e')!.InCycle);
  t.notOk(g.report('f')!.InCycle);
  t.equal(g.report('a')!.Depth, 1, 'the cycle shares one depth: one above d');
  t.equal(g.report('f')!.Depth, 2);
  t.same(g.report('a')!.TransitiveDependents.map((r) => r.Service), ['c', 'f', 'b'], 'impact inside a cycle reaches every member');
});

t.test('a component with several loops still gets one closed path through every member', async (t) => {
  const g = graph({ a: ['b', 'c'], b: ['a'], c: ['a'] });
  const [cycle] = g.graph().Cycles;
  t.equal(cycle![0], 'a');
  t.equal(cycle![cycle!.length - 1], 'a');
  t.same(new Set(cycle), new Set(['a', 'b', 'c']));
});

t.test('names compare case-insensitively and dependencies are merged over instances', async (t) => {
  const g = new ServiceDependencies([
    { Service: 'Web', Dependencies: ['API'] },
    { Service: 'web', Dependencies: ['db'] },
    { Service: 'api', Dependencies: [] },
  ]);
  t.same(g.report('WEB')!.Dependencies, ['API', 'db']);
  t.equal(g.report('web')!.Instances, 2);
  t.ok(g.report('api')!.Registered);
});

t.test('large graphs: linear chains and wide fan-in stay fast', async (t) => {
  const edges: Record<string, string[]> = {};
  for (let i = 0; i < 5000; i++) edges[`s${i}`] = i + 1 < 5000 ? [`s${i + 1}`] : [];
  const started = Date.now();
  const g = graph(edges);
  t.equal(g.report('s0')!.Depth, 4999, 'no recursion limit on deep chains');
  t.equal(g.report('s4999')!.TransitiveDependents.length, 4999);
  t.ok(Date.now() - started < 5000);
});
