// The snapshot agent's settings: Consul-shaped config file, flags over the file, defaults, errors.
import t from 'tap';
import { ConfigError } from '../server/config.ts';
import { resolveSettings, snapshotAgentConfig } from './snapshot-agent-command.ts';

t.test('defaults: Consul\'s interval, retain, lock key shape; the address from the environment', async (t) => {
  const s = resolveSettings({}, {}, { KONSUL_HTTP_ADDR: '10.0.0.5:8501' });
  t.same(s.httpAddrs, ['http://10.0.0.5:8501']);
  t.equal(s.intervalMs, 3_600_000);
  t.equal(s.retain, 30);
  t.equal(s.retainDays, 0);
  t.equal(s.lockKey, 'konsul-snapshot/lock');
  t.equal(s.maxFailures, 3);
  t.equal(s.service, 'konsul-snapshot');
  t.equal(s.dir, '.');
  t.equal(s.metricsAddr, undefined);
});

t.test('the file as Consul writes it, with Konsul\'s additions; flags win', async (t) => {
  const file = snapshotAgentConfig({
    snapshot_agent: {
      http_addr: ['127.0.0.1:8501', 'http://127.0.0.1:8502'],
      id: 'backup-1',
      metrics_addr: '127.0.0.1:9102',
      snapshot: { interval: '30m', retain: 48, retain_days: 7, stale: true, lock_key: 'ops/snap/lock', max_failures: 0, session_ttl: '20s', lock_delay: '5s', deregister_after: '1h', service: 'backups' },
      local_storage: { path: '/var/backups/konsul' },
    },
  }, 'agent.json');
  const s = resolveSettings(file, { retain: 5, interval: '1m' }, {});
  t.same(s.httpAddrs, ['http://127.0.0.1:8501', 'http://127.0.0.1:8502']);
  t.equal(s.intervalMs, 60_000, 'flag');
  t.equal(s.retain, 5, 'flag');
  t.equal(s.retainDays, 7);
  t.equal(s.stale, true);
  t.equal(s.lockKey, 'ops/snap/lock');
  t.equal(s.maxFailures, 0);
  t.equal(s.sessionTtl, '20s');
  t.equal(s.instanceId, 'backup-1');
  t.equal(s.dir, '/var/backups/konsul');
  t.same(s.metricsAddr, { host: '127.0.0.1', port: 9102 });
});

t.test('unknown keys and bad values are errors that name the key', async (t) => {
  t.throws(() => snapshotAgentConfig({ snapshot_agent: { snapshot: { intervall: '1h' } } }, 'f.json'), new ConfigError('f.json: snapshot_agent.snapshot: unknown key "intervall" (known: interval, retain, retain_days, stale, service, deregister_after, lock_key, max_failures, session_ttl, lock_delay)'));
  t.throws(() => snapshotAgentConfig({ snapshot_agent: { snapshot: { interval: 'hourly' } } }, 'f.json'), /snapshot\.interval must be a duration/);
  t.throws(() => snapshotAgentConfig({ snapshot_agent: { snapshot: { retain: -1 } } }, 'f.json'), /snapshot\.retain must be a whole number/);
  t.throws(() => snapshotAgentConfig({ snapshot_agent: { http_addr: 8500 } }, 'f.json'), /http_addr must be an address/);
  t.throws(() => snapshotAgentConfig([], 'f.json'), /f\.json must be a JSON object/);
  t.throws(() => resolveSettings({ httpAddrs: ['ftp://x'] }, {}, {}), /http_addr: unsupported scheme/);
  t.throws(() => resolveSettings({}, { instanceId: 'a/b' }, {}), /id must be a name without slashes/);
});
