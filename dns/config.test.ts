// How the DNS settings map onto the server's config file and flags (server/config.ts): Consul's key
// names, "off", the dev server's ephemeral port, and validation errors.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command } from 'commander';
import t from 'tap';
import { ConfigError, DEFAULTS, mergeConfig, readConfigFile } from '../server/config.ts';
import { addDnsOptions, dnsOptionValues } from './cli-options.ts';
import { normaliseRecursor, parseDnsAddr } from './config.ts';

const dir = mkdtempSync(join(tmpdir(), 'konsul-dns-config-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

function fileConfig(content: unknown) {
  const file = join(dir, `c${Math.random().toString(36).slice(2)}.json`);
  writeFileSync(file, JSON.stringify(content));
  return readConfigFile(file);
}

t.test('config file keys: dns_addr, domain, recursors, dns_config', async (t) => {
  const c = mergeConfig(
    fileConfig({ dns_addr: '0.0.0.0:53', domain: 'Corp.Internal.', recursors: ['10.0.0.2', '[::1]:5353'], dns_config: { only_passing: true, node_ttl: '10s' } }),
  );
  t.same(c.dnsAddr, { host: '0.0.0.0', port: 53 });
  t.equal(c.dnsDomain, 'corp.internal');
  t.same(c.dnsRecursors, ['10.0.0.2:53', '[::1]:5353']);
  t.same(c.dnsConfig, { onlyPassing: true, nodeTtlSeconds: 10 });
  t.equal(mergeConfig(fileConfig({ dns_addr: 'off' })).dnsAddr, null);
  t.throws(() => fileConfig({ dns_addr: 8600 }), ConfigError);
  t.throws(() => fileConfig({ domain: 'a..b' }), { name: 'ConfigError', message: /not a valid domain/ });
  t.throws(() => fileConfig({ recursors: '1.1.1.1' }), { name: 'ConfigError', message: /list of strings/ });
  t.throws(() => fileConfig({ dns_config: { ttl: 1 } }), { name: 'ConfigError', message: /unknown key "dns_config.ttl"/ });
});

t.test('defaults: 127.0.0.1:8600 (the very DEFAULTS object, so the server can tell), dev: an ephemeral port', async (t) => {
  const plain = mergeConfig({});
  t.same(plain.dnsAddr, { host: '127.0.0.1', port: 8600 });
  t.equal(plain.dnsAddr, DEFAULTS.dnsAddr, 'not given: the default object itself');
  t.not(mergeConfig({ dnsAddr: { host: '127.0.0.1', port: 8600 } }).dnsAddr, DEFAULTS.dnsAddr, 'given explicitly: another object');
  t.same(mergeConfig({ dev: true }).dnsAddr, { host: '127.0.0.1', port: 0 });
  t.same(mergeConfig({ dev: true }, { dnsAddr: { host: '127.0.0.1', port: 5353 } }).dnsAddr, { host: '127.0.0.1', port: 5353 });
  t.equal(mergeConfig({ dev: true }, { dnsAddr: null }).dnsAddr, null, 'off stays off in dev');
});

t.test('flags: --dns-addr (off), --domain, repeated --recursor', async (t) => {
  const parse = (argv: string[]) => {
    let seen: Record<string, unknown> = {};
    addDnsOptions(new Command('x').exitOverride())
      .action((opts: Record<string, unknown>) => {
        seen = opts;
      })
      .parse(['node', 'x', ...argv]);
    return dnsOptionValues(seen);
  };
  t.same(parse([]), { dnsAddr: undefined, dnsDomain: undefined, dnsRecursors: undefined });
  t.same(parse(['--dns-addr', 'off']), { dnsAddr: null, dnsDomain: undefined, dnsRecursors: undefined });
  t.same(parse(['--dns-addr', '[::1]:53', '--domain', 'Example.', '--recursor', '1.1.1.1', '--recursor', '8.8.8.8:5353']), {
    dnsAddr: { host: '::1', port: 53 },
    dnsDomain: 'example',
    dnsRecursors: ['1.1.1.1:53', '8.8.8.8:5353'],
  });
  t.equal(parseDnsAddr(':8600')?.host, '127.0.0.1');
  t.throws(() => normaliseRecursor('a b'));
  t.throws(() => normaliseRecursor('1.2.3.4:70000'));
});
