// "host:port" addresses by Go's net.SplitHostPort / JoinHostPort rules (lib/host-port.ts).
import t from 'tap';
import { hostPortOf, joinHostPort, parseAddress, parsePort, splitHostPort } from './host-port.ts';

t.test('splitHostPort splits as Go does', async (t) => {
  t.same(splitHostPort('127.0.0.1:80'), { ok: true, host: '127.0.0.1', port: '80' });
  t.same(splitHostPort('example.com:http'), { ok: true, host: 'example.com', port: 'http' }, 'the port is not checked');
  t.same(splitHostPort('[::1]:443'), { ok: true, host: '::1', port: '443' });
  t.same(splitHostPort('[fe80::1%eth0]:80'), { ok: true, host: 'fe80::1%eth0', port: '80' });
  t.same(splitHostPort(':8080'), { ok: true, host: '', port: '8080' });
  t.same(splitHostPort('h:'), { ok: true, host: 'h', port: '' });
  t.same(splitHostPort('[]:80'), { ok: true, host: '', port: '80' });
});

t.test("splitHostPort refuses what Go refuses, with Go's texts", async (t) => {
  const cases: [string, string][] = [
    ['example.com', 'missing port in address'],
    ['::1:80', 'too many colons in address'],
    ['[::1]', 'missing port in address'],
    ['[::1', "missing ']' in address"],
    ['[::1]80', 'missing port in address'],
    ['[::1]:80:90', 'too many colons in address'],
    ['[a]b:80', 'missing port in address'],
    ['a[b]:80', "unexpected '[' in address"],
    ['ab]:80', "unexpected ']' in address"],
    ['[a]:8]0', "unexpected ']' in address"],
  ];
  for (const [address, why] of cases) t.same(splitHostPort(address), { ok: false, error: `address ${address}: ${why}` }, address);
});

t.test('parsePort takes 0 to 65535 in decimal digits', async (t) => {
  t.equal(parsePort('0'), 0);
  t.equal(parsePort('8500'), 8500);
  t.equal(parsePort('65535'), 65535);
  t.equal(parsePort('00080'), 80);
  for (const bad of ['', '65536', '99999', '123456', '-1', '+80', ' 80', '8e3', '0x50', 'http']) t.equal(parsePort(bad), null, JSON.stringify(bad));
});

t.test('parseAddress: a host (maybe empty) and a numeric port', async (t) => {
  t.same(parseAddress('10.0.0.1:8300'), { host: '10.0.0.1', port: 8300 });
  t.same(parseAddress('[::1]:8500'), { host: '::1', port: 8500 });
  t.same(parseAddress(':8600'), { host: '', port: 8600 });
  for (const bad of ['10.0.0.1', '10.0.0.1:', 'h:70000', '::1:8500', 'h:port', '[::1]']) t.equal(parseAddress(bad), null, bad);
});

t.test('joinHostPort brackets IPv6 hosts', async (t) => {
  t.equal(joinHostPort('10.0.0.1', 8300), '10.0.0.1:8300');
  t.equal(joinHostPort('::1', 8500), '[::1]:8500');
  t.equal(joinHostPort('', '53'), ':53');
  for (const address of ['10.0.0.1:8300', '[::1]:8500', 'node-1.example:80']) {
    const { host, port } = parseAddress(address)!;
    t.equal(joinHostPort(host, port), address, `${address} round-trips`);
  }
});

t.test('hostPortOf reads addresses Konsul wrote, never failing', async (t) => {
  t.same(hostPortOf('10.0.0.1:8300'), { host: '10.0.0.1', port: 8300 });
  t.same(hostPortOf('[::1]:8300'), { host: '::1', port: 8300 });
  t.same(hostPortOf('10.0.0.1'), { host: '10.0.0.1', port: 0 });
  t.same(hostPortOf('[::1]'), { host: '::1', port: 0 });
  t.same(hostPortOf('h:99999'), { host: 'h', port: 0 });
  t.same(hostPortOf(''), { host: '', port: 0 });
});
