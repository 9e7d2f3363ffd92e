// The ?filter= subset: parsing, operators, list fan-out, and 400s for malformed expressions.
import t from 'tap';
import { applyFilter, compileFilter } from './filter-expression.ts';
import { KonsulError } from '../lib/errors.ts';

const entry = {
  Node: { Node: 'n1', Meta: { rack: 'r1', 'zone-a': 'yes' } },
  Service: { ID: 'web-1', Service: 'web', Tags: ['v1', 'primary'], Port: 8080, EnableTagOverride: false, Meta: {} },
  Checks: [
    { CheckID: 'serfHealth', Status: 'passing' },
    { CheckID: 'http', Status: 'critical', Output: 'connection refused' },
  ],
};

const matches = (expression: string) => compileFilter(expression)(entry);

t.test('comparisons against the field type', async (t) => {
  t.ok(matches('Service.Service == web'));
  t.ok(matches('Service.Service == "web"'));
  t.ok(matches('Service.Port == 8080'));
  t.notOk(matches('Service.Port == 80'));
  t.ok(matches('Service.EnableTagOverride == false'));
  t.ok(matches('Service.Service != api'));
  t.notOk(matches('Missing.Field == x'), 'a missing field equals nothing');
  t.ok(matches('Missing.Field != x'));
});

t.test('in, contains, matches, is empty', async (t) => {
  t.ok(matches('v1 in Service.Tags'));
  t.ok(matches('"primary" in Service.Tags'));
  t.notOk(matches('v2 in Service.Tags'));
  t.ok(matches('v2 not in Service.Tags'));
  t.ok(matches('Service.Tags contains v1'));
  t.ok(matches('Service.Tags not contains v9'));
  t.ok(matches('rack in Node.Meta'), 'in on a map tests its keys');
  t.ok(matches('eb in Service.Service'), 'in on a string is a substring test');
  t.ok(matches('Service.ID matches "^web-[0-9]+$"'));
  t.ok(matches('Service.ID not matches "^api"'));
  t.ok(matches('Service.Meta is empty'));
  t.ok(matches('Node.Meta is not empty'));
  t.ok(matches('Nothing is empty'));
  t.ok(matches('Node.Meta["zone-a"] == yes'), 'map index syntax');
});

t.test('selectors through lists match any element', async (t) => {
  t.ok(matches('Checks.Status == critical'));
  t.ok(matches('Checks.Status == passing'));
  t.notOk(matches('Checks.Status == warning'));
  t.ok(matches('Checks.Status != warning'));
  t.notOk(matches('Checks.Status != critical'), 'the negation: no element may match');
  t.ok(matches('Checks.Output matches refused'));
});

t.test('and, or, not, parentheses, precedence', async (t) => {
  t.ok(matches('Service.Service == web and Service.Port == 8080'));
  t.ok(matches('Service.Service == api or Service.Port == 8080'));
  t.notOk(matches('not Service.Service == web'));
  t.ok(matches('not (Service.Service == api or Service.Port == 1)'));
  t.ok(matches('Service.Service == api and Service.Port == 1 or v1 in Service.Tags'), 'and binds tighter than or');
  t.same(applyFilter([entry, { ...entry, Service: { ...entry.Service, Service: 'api' } }], 'Service.Service == api').map((e) => e.Service.Service), ['api']);
  t.same(applyFilter([entry], '  ').length, 1, 'a blank filter keeps everything');
});

t.test('malformed expressions are 400s', async (t) => {
  for (const bad of ['Service ==', '== web', 'Service.Service = web', '(Service.Service == web', 'Service.Service == web and', 'Service.ID matches "("', 'x in', '"unterminated', 'Service is full', 'Meta[rack] == r1']) {
    let error: unknown;
    try {
      compileFilter(bad);
    } catch (err) {
      error = err;
    }
    t.ok(error instanceof KonsulError && error.code === 'badRequest' && /^Failed to create boolean expression evaluator: /.test(error.message), `${bad}: ${String(error)}`);
  }
});
