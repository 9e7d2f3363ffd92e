// Test certificates made by the real `openssl` CLI in a directory the test owns: a CA, and leaf
// certificates it signs for mutual TLS between servers.
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface LeafCertificate {
  readonly certFile: string;
  readonly keyFile: string;
  readonly caFile: string;
  readonly cert: Buffer;
  readonly key: Buffer;
  readonly ca: Buffer;
}

const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(dir: string, args: string[]): void {
  execFileSync('openssl', args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
}

/** Fails with a clear message when openssl is missing (CI installs it). */
export function requireOpenssl(): void {
  try {
    execFileSync('openssl', ['version'], { stdio: 'ignore' });
  } catch {
    throw new Error('the TLS tests need the `openssl` CLI to generate certificates, and it was not found on PATH (Debian/Ubuntu: apt-get install openssl)');
  }
}

/** A self-signed CA: `<dir>/<name>.crt` and `.key`. */
export function makeCa(dir: string, name: string): void {
  openssl(dir, ['req', '-x509', ...EC, '-keyout', `${name}.key`, '-out', `${name}.crt`, '-subj', `/CN=${name}`, '-days', '2']);
}

/** A leaf certificate for `name` signed by `ca`. Its SAN deliberately names no IP: host names are not checked. */
export function makeCert(dir: string, ca: string, name: string): LeafCertificate {
  openssl(dir, ['req', '-new', ...EC, '-keyout', `${name}.key`, '-out', `${name}.csr`, '-subj', `/CN=${name}`]);
  writeFileSync(
    join(dir, `${name}.ext`),
    ['basicConstraints=CA:FALSE', 'keyUsage=digitalSignature,keyEncipherment', 'extendedKeyUsage=serverAuth,clientAuth', `subjectAltName=DNS:${name}.konsul.test`].join('\n'),
  );
  openssl(dir, ['x509', '-req', '-in', `${name}.csr`, '-CA', `${ca}.crt`, '-CAkey', `${ca}.key`, '-CAcreateserial', '-out', `${name}.crt`, '-days', '2', '-extfile', `${name}.ext`]);
  const certFile = join(dir, `${name}.crt`);
  const keyFile = join(dir, `${name}.key`);
  const caFile = join(dir, `${ca}.crt`);
  return { certFile, keyFile, caFile, cert: readFileSync(certFile), key: readFileSync(keyFile), ca: readFileSync(caFile) };
}
