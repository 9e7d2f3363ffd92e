// The plugin interface. A plugin is a part of Konsul that is not the core (the DNS interface
// today; RBAC/LDAP/OIDC and the Cloudflare sync next): it has a name, a config section described
// as a settings table (so its file keys, flags, defaults, validation and --help text come from
// the same place as the process's own), the plugins it needs started first, and a start that
// returns the running plugin, which stops. What it may touch of the process it reaches through
// the PluginHost: HTTP routes, read views of the catalog and the KV store, watches that wake it
// on a change, and a logger. Both `konsul server` and `konsul agent` host plugins; each gives
// the views it has (a server its replicated state, an agent its cache). See
// docs/adr/0022-plugins.md and plugins/README.md.
import type { FastifyPluginAsync } from 'fastify';
import type { DnsCatalogView } from '../dns/catalog-view.ts';
import type { KvEntry } from '../fsm/state/kv.ts';
import type { Service } from '../lib/service.ts';
import type { SettingsTable } from './settings.ts';

export type PluginLogLevel = 'error' | 'warn' | 'info' | 'debug';

/** Writes a line to the process's log, prefixed with the plugin's name, when the log level lets it. */
export type PluginLogger = (level: PluginLogLevel, message: string) => void;

/** Stops a watch. */
export type CancelWatch = () => void;

/**
 * The catalog as the process holds it: synchronous and cheap (the contract is DnsCatalogView's,
 * dns/catalog-view.ts). On an agent a name not cached yet throws ViewLoadingError.
 */
export type CatalogView = DnsCatalogView;

/** KV reads from the process's own state (a server's replica, an agent's cache): stale reads, no leader needed. */
export interface KvView {
  get(key: string): Promise<KvEntry | undefined>;
  /** Every entry whose key starts with `prefix`, in key order. */
  list(prefix: string): Promise<KvEntry[]>;
}

/** Wake-ups on change: a callback may wake for a change that does not matter to it, but never misses one. */
export interface Watches {
  /** Calls `onChange` after any entry under `prefix` ('' = any) changes. */
  kv(prefix: string, onChange: () => void): CancelWatch;
  /** Calls `onChange` after the catalog (nodes, services, checks) changes. */
  catalog(onChange: () => void): CancelWatch;
}

export interface PluginHost {
  /** Which process hosts the plugin. */
  readonly process: 'server' | 'agent';
  readonly nodeName: string;
  readonly datacenter: string;
  readonly log: PluginLogger;
  /** Adds routes to the process's HTTP API (a fastify plugin; call it during start, before the API listens). */
  routes(register: FastifyPluginAsync): void;
  readonly catalog: CatalogView;
  readonly kv: KvView;
  readonly watches: Watches;
}

/** A listener a plugin opened (printed at start: `konsul: dns listening on 127.0.0.1:8600 (udp+tcp)`). */
export interface PluginListener {
  readonly name: string;
  readonly host: string;
  readonly port: number;
  /** "udp+tcp", "https"... */
  readonly protocols: string;
}

export interface RunningPlugin {
  /** What it listens on (none for a plugin that serves through the host's routes only). */
  readonly listeners: readonly PluginListener[];
  stop(): Promise<void>;
}

export interface Plugin<C = unknown> {
  /** Lowercase, as written in the `plugins` setting ("dns"). */
  readonly name: string;
  /** One line for --help and the README. */
  readonly description: string;
  /** On unless the `plugins` setting leaves it out. */
  readonly enabledByDefault: boolean;
  /** Plugins that must be started before this one (and are stopped after it). */
  readonly dependencies?: readonly string[];
  /** Its config section: properties of the process config, with their file keys and flags. */
  readonly settings: SettingsTable<C>;
  /** Checks that need several settings together; throws ConfigError. Runs before anything starts. */
  validate?(config: C): void;
  start(host: PluginHost, config: C): Promise<RunningPlugin>;
}

/** A plugin with its config type erased (the loader keeps a list of different plugins). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type AnyPlugin = Plugin<any>;

/** A started plugin as the process's supervisor holds it. */
export interface PluginService extends Service {
  readonly plugin: AnyPlugin;
  readonly running: RunningPlugin | null;
}
