// The settings `konsul server` and `konsul agent` share: same file keys, same flags, same parsing
// (the two processes' tables in server/config.ts and agent/config.ts start from these), and the
// config-file options both commands take: `--config <file>` (repeatable) and `--config-dir <dir>`.
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { hostname } from 'node:os';
import { join } from 'node:path';
import { Option, type Command } from 'commander';
import { ConfigError, hostPort, hostPortText, listOf, logLevel, positiveIntAs, text, type HostPort, type LogLevel } from '../lib/config-values.ts';
import { setting, type SettingSpec } from './settings.ts';

export function nodeNameSetting(): SettingSpec<string> {
  return setting({ kind: text('<name>'), default: hostname(), file: 'node_name', flag: '--node', defaultHelp: 'the host name', help: "this node's name" });
}

export const datacenterSetting = setting({ kind: text('<dc>'), default: 'dc1', file: 'datacenter', flag: '--datacenter', help: 'datacenter name' });

export function dataDirSetting(defaultDir: string, help: string): SettingSpec<string> {
  return setting({ kind: text('<dir>'), default: defaultDir, file: 'data_dir', flag: '--data-dir', help });
}

export function httpAddrSetting(help = 'address of the HTTP API'): SettingSpec<HostPort> {
  return setting({ kind: hostPort, default: { host: '127.0.0.1', port: 8500 }, file: 'http_addr', flag: '--http-addr', help });
}

export const logLevelSetting = setting<LogLevel>({ kind: logLevel, default: 'info', file: 'log_level', flag: '--log-level', help: 'fatal|error|warn|info|debug|trace|silent' });

export function retryJoinSetting(help: string): SettingSpec<readonly string[]> {
  return setting({ kind: listOf(hostPortText, '<host:port>'), default: [], file: 'retry_join', flag: '--retry-join', help });
}

/** Mutual TLS on the server RPC port (servers among themselves, agents towards servers): all three or none. */
export const rpcTlsSettings = {
  rpcTlsCertFile: setting({ kind: text('<file>'), default: '', file: 'rpc_tls_cert_file', flag: '--rpc-tls-cert', help: 'PEM certificate for mutual TLS on the server RPC port' }),
  rpcTlsKeyFile: setting({ kind: text('<file>'), default: '', file: 'rpc_tls_key_file', flag: '--rpc-tls-key', help: 'PEM private key for mutual TLS on the server RPC port' }),
  rpcTlsCaFile: setting({ kind: text('<file>'), default: '', file: 'rpc_tls_ca_file', flag: '--rpc-tls-ca', help: "PEM CA that signs every server's (and agent's) certificate" }),
};

/** The health checks' housekeeping, as on Consul agents (servers run an agent too). */
export const checkReapSettings = {
  checkReapIntervalMs: setting({
    kind: positiveIntAs('<ms>'),
    default: 30_000,
    file: 'check_reap_interval_ms',
    help: 'how often services critical for longer than their DeregisterCriticalServiceAfter are looked for',
  }),
  checkDeregisterIntervalMinMs: setting({ kind: positiveIntAs('<ms>'), default: 60_000, file: 'check_deregister_interval_min_ms', help: 'the shortest DeregisterCriticalServiceAfter honoured' }),
};

export function checkRpcTls(config: { readonly rpcTlsCertFile: string; readonly rpcTlsKeyFile: string; readonly rpcTlsCaFile: string }): void {
  const set = [config.rpcTlsCertFile, config.rpcTlsKeyFile, config.rpcTlsCaFile].filter((f) => f !== '').length;
  if (set !== 0 && set !== 3) throw new ConfigError('rpc TLS needs all three of rpc_tls_cert_file, rpc_tls_key_file and rpc_tls_ca_file');
}

/**
 * `--config <file>` (repeatable; `--config-file` is its old agent spelling, kept hidden) and
 * `--config-dir <dir>` (every *.json in name order). Files are read in the order given, files
 * before directories; later files override earlier settings.
 */
export function addConfigFileOptions(command: Command, what: string): Command {
  const collect = (value: string, previous: string[] | undefined): string[] => [...(previous ?? []), value];
  return command
    .addOption(new Option('--config <file>', `JSON config file: ${what} (repeatable)`).argParser(collect))
    .addOption(new Option('--config-file <file>').argParser(collect).hideHelp())
    .addOption(new Option('--config-dir <dir>', 'directory of *.json config files, read in name order (repeatable)').argParser(collect));
}

/** The config files the options name, in reading order. */
export function configFilesOf(opts: Record<string, unknown>): string[] {
  const list = (v: unknown): string[] => (Array.isArray(v) ? (v as string[]) : []);
  return [...list(opts.config), ...list(opts.configFile), ...list(opts.configDir).flatMap((dir) => configDirFiles(dir))];
}

/** Every *.json file of a directory, in name order (as Consul reads a config dir). */
export function configDirFiles(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (err) {
    throw new ConfigError(`cannot read config dir ${dir}: ${(err as Error).message}`);
  }
  return names
    .filter((n) => n.endsWith('.json'))
    .sort()
    .map((n) => join(dir, n))
    .filter((p) => statSync(p).isFile());
}

/** A config file's JSON. */
export function readJsonFile(path: string): unknown {
  try {
    return JSON.parse(readFileSync(path, 'utf8'));
  } catch (err) {
    throw new ConfigError(`cannot read config file ${path}: ${(err as Error).message}`);
  }
}
