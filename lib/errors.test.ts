import t from 'tap';
import { badRequest, defineError, KonsulError } from './errors.ts';

t.test('defineError makes a named class with a fixed code', async (t) => {
  const NoServersError = defineError('NoServersError', 'unavailable');
  const err = new NoServersError('no servers known', { cause: new Error('dial') });
  t.ok(err instanceof NoServersError);
  t.ok(err instanceof KonsulError);
  t.ok(err instanceof Error);
  t.equal(err.code, 'unavailable');
  t.equal(err.name, 'NoServersError');
  t.equal(NoServersError.name, 'NoServersError');
  t.equal(err.message, 'no servers known');
  t.equal((err.cause as Error).message, 'dial');
});

t.test('helpers carry their code', async (t) => {
  const err = badRequest('Missing key name');
  t.equal(err.code, 'badRequest');
  t.equal(err.message, 'Missing key name');
});
