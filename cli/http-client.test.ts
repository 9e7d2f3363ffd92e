// The HTTP client's pure parts: address and token resolution, paths, query strings, error texts.
import t from 'tap';
import { UsageError } from './args.ts';
import {
  describeNetworkFailure,
  encodePathSegments,
  HttpStatusError,
  parseHttpAddress,
  queryString,
  resolveHttpAddress,
  resolveToken,
} from './http-client.ts';

t.test('parseHttpAddress normalizes to a base URL', async (t) => {
  t.equal(parseHttpAddress('127.0.0.1:8500'), 'http://127.0.0.1:8500');
  t.equal(parseHttpAddress('localhost:9000'), 'http://localhost:9000');
  t.equal(parseHttpAddress('konsul.example'), 'http://konsul.example:8500', 'a bare host gets port 8500');
  t.equal(parseHttpAddress('[::1]:8500'), 'http://[::1]:8500');
  t.equal(parseHttpAddress('[::1]'), 'http://[::1]:8500');
  t.equal(parseHttpAddress('http://10.0.0.1:8500'), 'http://10.0.0.1:8500');
  t.equal(parseHttpAddress('https://konsul.example:8501/'), 'https://konsul.example:8501');
  t.equal(parseHttpAddress('HTTPS://konsul.example'), 'https://konsul.example', 'with a scheme, its default port');
  t.equal(parseHttpAddress('  127.0.0.1:8500 '), 'http://127.0.0.1:8500');
});

t.test('parseHttpAddress rejects what is not an address', async (t) => {
  for (const bad of ['', 'ftp://x:21', 'unix:///tmp/konsul.sock', 'http://x:8500/v1', 'http://u:p@x:8500', 'http://x:8500?a=1', '::1', 'x:99999', 'http://']) {
    t.throws(() => parseHttpAddress(bad), UsageError, JSON.stringify(bad));
  }
});

t.test('resolveHttpAddress: flag, then KONSUL_HTTP_ADDR, then CONSUL_HTTP_ADDR, then the default', async (t) => {
  const env = { KONSUL_HTTP_ADDR: 'k:1', CONSUL_HTTP_ADDR: 'c:2' };
  t.equal(resolveHttpAddress('f:3', env), 'http://f:3');
  t.equal(resolveHttpAddress(undefined, env), 'http://k:1');
  t.equal(resolveHttpAddress(undefined, { CONSUL_HTTP_ADDR: 'https://c:2' }), 'https://c:2');
  t.equal(resolveHttpAddress(undefined, { KONSUL_HTTP_ADDR: '', CONSUL_HTTP_ADDR: 'c:2' }), 'http://c:2', 'empty means unset');
  t.equal(resolveHttpAddress(undefined, {}), 'http://127.0.0.1:8500');
  t.throws(() => resolveHttpAddress(undefined, { CONSUL_HTTP_ADDR: 'ftp://c' }), { message: /^CONSUL_HTTP_ADDR: / }, 'the error names the source');
});

t.test('resolveToken: flag, then KONSUL_HTTP_TOKEN, then CONSUL_HTTP_TOKEN', async (t) => {
  t.equal(resolveToken('f', { KONSUL_HTTP_TOKEN: 'k', CONSUL_HTTP_TOKEN: 'c' }), 'f');
  t.equal(resolveToken(undefined, { KONSUL_HTTP_TOKEN: 'k', CONSUL_HTTP_TOKEN: 'c' }), 'k');
  t.equal(resolveToken(undefined, { CONSUL_HTTP_TOKEN: 'c' }), 'c');
  t.equal(resolveToken(undefined, {}), undefined);
  t.equal(resolveToken('', { KONSUL_HTTP_TOKEN: '' }), undefined);
});

t.test('encodePathSegments keeps slashes and escapes the rest', async (t) => {
  t.equal(encodePathSegments('a/b/'), 'a/b/');
  t.equal(encodePathSegments('with space/100%?#&'), 'with%20space/100%25%3F%23%26');
  t.equal(encodePathSegments('héllo'), 'h%C3%A9llo');
});

t.test('queryString: bare flags for true, leaves out false and undefined', async (t) => {
  t.equal(queryString({}), '');
  t.equal(queryString({ recurse: true, cas: '0', flags: undefined, keys: false }), '?recurse&cas=0');
  t.equal(queryString({ separator: '/', index: '12', wait: '5m' }), '?separator=%2F&index=12&wait=5m');
});

t.test('error texts are one line', async (t) => {
  t.equal(new HttpStatusError(400, 'Bad Request', 'Missing key name\n').message, 'Konsul answered 400 Bad Request: Missing key name');
  t.equal(new HttpStatusError(500, 'Internal Server Error', 'line one\n  line two').message, 'Konsul answered 500 Internal Server Error: line one line two');
  t.equal(new HttpStatusError(503, 'Service Unavailable', '').message, 'Konsul answered 503 Service Unavailable');
  t.equal(describeNetworkFailure(Object.assign(new TypeError('fetch failed'), { cause: Object.assign(new Error('x'), { code: 'ECONNREFUSED' }) })), 'connection refused');
  const happyEyeballs = new AggregateError([Object.assign(new Error('a'), { code: 'ECONNREFUSED' })], 'all failed');
  t.equal(describeNetworkFailure(Object.assign(new TypeError('fetch failed'), { cause: happyEyeballs })), 'connection refused');
  t.equal(describeNetworkFailure(Object.assign(new TypeError('fetch failed'), { cause: new Error('other\nmore') })), 'other');
});
