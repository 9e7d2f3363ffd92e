// Konsul's side of the manifests: the servers' and agents' command lines go through Konsul's own
// command-line parser (cli/konsul.ts) and their config files through its config parser
// (server/config.ts, agent/config.ts), with the downward-API variables replaced by sample values,
// and the result must agree with the pods' declared ports, the StatefulSet and its Services:
// every address a server listens on is a declared container port, the advertised and joined
// addresses are the headless Service's pod names on the RPC port, bootstrap_expect is the replica
// count, and the data directory is on the persistent volume.
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { Command } from 'commander';
import { konsulProgram } from '../../cli/konsul.ts';
import { flagLayer } from '../../plugins/settings.ts';
import { isWildcard, mergeConfig, parseHostPort, readConfigFile, SERVER_SETTINGS, type HostPort, type ServerConfig } from '../../server/config.ts';
import { arr, containerPorts, find, kindOf, nameOf, obj, objs, podSpec, selects, podLabels, str, where, workloads, type Manifest, type Obj } from './manifest-check.ts';

/** The namespace kustomization.yaml deploys into (the DNS names are checked against it). */
export const SAMPLE_NAMESPACE = 'konsul';

/** What the downward API would give a pod, for checking command lines. */
const SAMPLE_FIELDS: Readonly<Record<string, string>> = {
  'metadata.namespace': SAMPLE_NAMESPACE,
  'status.podIP': '10.244.1.17',
  'status.hostIP': '192.168.10.21',
  'spec.nodeName': 'worker-1',
  'metadata.uid': '0b6f1e52-3d1c-4f3e-9a57-2f5a4d7c9e10',
};

export interface KonsulCheck {
  readonly problems: string[];
  /** What could not be checked (e.g. a parser that does not exist yet), for the test's output. */
  readonly notes: string[];
}

interface Target {
  readonly workload: Manifest;
  readonly container: Obj;
  /** The pod name used for the sample values (a StatefulSet's first pod). */
  readonly podName: string;
  /** args with $(VAR) replaced by sample values. */
  readonly args: string[];
}

function targetFor(ms: readonly Manifest[], subcommand: string): Target | undefined {
  for (const w of workloads(ms)) {
    for (const c of objs(podSpec(w).containers)) {
      const args = arr(c.args).map(String);
      if (args[0] !== subcommand) continue;
      const podName = kindOf(w) === 'StatefulSet' ? `${nameOf(w)}-0` : `${nameOf(w)}-x7k2p`;
      const env = new Map<string, string>();
      for (const e of objs(c.env)) {
        const path = str(obj(obj(e.valueFrom).fieldRef).fieldPath);
        const value = str(e.value) ?? (path === 'metadata.name' ? podName : path !== undefined ? SAMPLE_FIELDS[path] : undefined);
        if (value !== undefined) env.set(str(e.name) ?? '', value);
      }
      return { workload: w, container: c, podName, args: args.map((a) => a.replace(/\$\(([^)]*)\)/g, (all, name: string) => env.get(name) ?? all)) };
    }
  }
  return undefined;
}

/** Parses `args` with the real `konsul` program; the subcommand's options, or an error message. */
export async function parseWithCli(args: readonly string[]): Promise<{ opts: Record<string, unknown> } | { error: string } | { missing: string }> {
  const program = konsulProgram();
  const sub = program.commands.find((c: Command) => c.name() === args[0]);
  if (sub === undefined) return { missing: `konsul has no "${args[0]}" command yet` };
  const errors: string[] = [];
  for (const c of [program, sub]) c.exitOverride().configureOutput({ writeErr: (s) => errors.push(s.trim()), writeOut: () => undefined });
  let captured: Record<string, unknown> | null = null;
  sub.action((opts: Record<string, unknown>) => {
    captured = opts;
  });
  try {
    await program.parseAsync(['node', 'konsul', ...args]);
  } catch (err) {
    // commander writes the error line, then the usage (showHelpAfterError): keep the error.
    return { error: errors.find((e) => e.startsWith('error:')) ?? (errors.join('; ') || (err as Error).message) };
  }
  return captured === null ? { error: 'the command did not run' } : { opts: captured };
}

/** A simple reading of --flag=value / --flag value pairs (repeated flags accumulate). */
export function flagValues(args: readonly string[]): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (let i = 1; i < args.length; i++) {
    const a = args[i]!;
    if (!a.startsWith('--')) continue;
    const eq = a.indexOf('=');
    const [name, value] = eq >= 0 ? [a.slice(2, eq), a.slice(eq + 1)] : [a.slice(2), args[i + 1]?.startsWith('--') === false ? args[++i]! : ''];
    out.set(name, [...(out.get(name) ?? []), value]);
  }
  return out;
}

/** The text of the ConfigMap key mounted at `path` in the container, if it is one. */
function mountedConfigMapFile(ms: readonly Manifest[], target: Target, path: string): { text: string; source: string } | string {
  const mount = objs(target.container.volumeMounts).find((vm) => str(vm.mountPath) === dirname(path));
  if (mount === undefined) return `${path} is not in a mounted volume`;
  const volume = objs(podSpec(target.workload).volumes).find((v) => v.name === mount.name);
  const cmName = str(obj(volume?.configMap).name);
  if (cmName === undefined) return `${path}: volume ${String(mount.name)} is not a ConfigMap`;
  const items = objs(obj(volume?.configMap).items);
  const key = items.length > 0 ? str(items.find((it) => it.path === basename(path))?.key) : basename(path);
  const cm = find(ms, 'ConfigMap', cmName);
  const text = key === undefined ? undefined : obj(cm?.object.data)[key];
  if (typeof text !== 'string') return `${path}: ConfigMap ${cmName} has no key ${String(key)}`;
  return { text, source: `ConfigMap ${cmName} key ${key}` };
}

/** Whether `path` lies on a volume mounted in the container; the volume's name if so. */
function volumeUnder(target: Target, path: string): string | undefined {
  const mounts = objs(target.container.volumeMounts)
    .filter((vm) => path === vm.mountPath || path.startsWith(`${String(vm.mountPath)}/`))
    .sort((a, b) => String(b.mountPath).length - String(a.mountPath).length);
  return str(mounts[0]?.name);
}

function portNamed(target: Target, name: string, protocol = 'TCP'): number | undefined {
  return containerPorts(target.container).find((p) => p.name === name && p.protocol === protocol)?.containerPort;
}

/** Checks the servers' joined/advertised addresses: NAME-i.SERVICE.NAMESPACE.svc:RPC for every i. */
function checkServerAddresses(server: Target, addresses: readonly string[], what: string, p: (m: string) => void): void {
  const spec = obj(server.workload.object.spec);
  const replicas = Number(spec.replicas ?? 1);
  const rpcPort = portNamed(server, 'rpc');
  const want = Array.from({ length: replicas }, (_, i) => `${nameOf(server.workload)}-${i}.${String(spec.serviceName)}.${SAMPLE_NAMESPACE}.svc:${rpcPort}`);
  const got = [...addresses].sort();
  if (got.join(',') !== want.join(',')) p(`${what} is [${got.join(', ')}], want every server pod's name on the RPC port: [${want.join(', ')}]`);
}

export async function checkKonsul(ms: readonly Manifest[]): Promise<KonsulCheck> {
  const problems: string[] = [];
  const notes: string[] = [];
  const server = targetFor(ms, 'server');
  if (server === undefined) return { problems: ['no workload runs `konsul server`'], notes };
  const sp = (msg: string): void => void problems.push(`${where(server.workload)}: ${msg}`);
  const sts = server.workload;
  const stsSpec = obj(sts.object.spec);
  const replicas = Number(stsSpec.replicas ?? 1);
  if (kindOf(sts) !== 'StatefulSet') sp('servers must run as a StatefulSet (stable names and volumes)');

  // ----- the server's command line and config file, through Konsul's parsers -----
  const parsed = await parseWithCli(server.args);
  if ('error' in parsed) sp(`konsul rejects the arguments: ${parsed.error}`);
  if ('missing' in parsed) sp(parsed.missing);
  const opts = 'opts' in parsed ? parsed.opts : {};
  let config: ServerConfig | undefined;
  // --config repeats (cli/konsul.ts); the manifests give one.
  const configPath = arr(opts.config).map(String).at(-1);
  if (configPath === undefined) sp('no --config: the ConfigMap is not used');
  else {
    const file = mountedConfigMapFile(ms, server, configPath);
    if (typeof file === 'string') sp(file);
    else {
      const dir = mkdtempSync(join(tmpdir(), 'konsul-manifest-'));
      try {
        writeFileSync(join(dir, 'server.json'), file.text);
        const fromFile = readConfigFile(join(dir, 'server.json'));
        // The flags' layer as `konsul server` makes it, from the server's settings table.
        config = mergeConfig(fromFile, flagLayer(SERVER_SETTINGS, opts));
      } catch (err) {
        sp(`${file.source}: ${(err as Error).message}`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  }

  if (config !== undefined) {
    const httpPort = portNamed(server, 'http');
    const rpcPort = portNamed(server, 'rpc');
    // Services and kubelet reach the pod on its IP; the readiness probe on 127.0.0.1.
    if (config.httpAddr.port !== httpPort) sp(`the HTTP API listens on port ${config.httpAddr.port}, the container port "http" is ${String(httpPort)}`);
    if (!isWildcard(config.httpAddr.host)) sp(`the HTTP API listens on ${config.httpAddr.host} only: Services and probes cannot reach it (use 0.0.0.0)`);
    if (config.rpcAddr.port !== rpcPort) sp(`the RPC listener is on port ${config.rpcAddr.port}, the container port "rpc" is ${String(rpcPort)}`);
    if (config.rpcAddr.host !== SAMPLE_FIELDS['status.podIP'] && !isWildcard(config.rpcAddr.host)) sp(`the RPC listener binds ${config.rpcAddr.host}, not the pod's IP`);
    const advertise = parseHostPort(config.rpcAdvertise || `${config.rpcAddr.host}:${config.rpcAddr.port}`, 'rpc_advertise');
    const ownName = `${server.podName}.${String(stsSpec.serviceName)}.${SAMPLE_NAMESPACE}.svc`;
    if (advertise.host !== ownName || advertise.port !== rpcPort) {
      sp(`the server advertises ${advertise.host}:${advertise.port}, want its stable name ${ownName}:${String(rpcPort)} (pod IPs change on restart)`);
    }
    checkServerAddresses(server, config.retryJoin, 'retry_join', sp);
    if (config.nodeName !== server.podName) sp(`the node name is ${config.nodeName}, want the pod name ${server.podName} (stable across restarts)`);
    if (config.bootstrapExpect !== replicas) sp(`bootstrap_expect is ${config.bootstrapExpect}, the StatefulSet has ${replicas} replicas`);
    if (config.bootstrapExpect > 1 && stsSpec.podManagementPolicy !== 'Parallel') {
      sp('podManagementPolicy must be Parallel: with OrderedReady the first server waits to be ready, and it cannot be before the others exist');
    }
    const claims = new Set(objs(stsSpec.volumeClaimTemplates).map((c) => str(obj(c.metadata).name)));
    const dataVolume = volumeUnder(server, config.dataDir);
    if (dataVolume === undefined || !claims.has(dataVolume)) sp(`data_dir ${config.dataDir} is not on a volumeClaimTemplate's volume (data would be lost on restart)`);
    if (config.autopilotCleanupDeadServers && config.autopilotMinQuorum < replicas) {
      sp(`autopilot_min_quorum ${config.autopilotMinQuorum} < ${replicas} replicas: autopilot could remove a server that is only being rescheduled`);
    }
    const dnsAddr = (config as unknown as { dnsAddr?: HostPort | null }).dnsAddr;
    if (dnsAddr === undefined) notes.push('this Konsul has no DNS interface: dns_addr not checked');
    else if (dnsAddr !== null) {
      for (const [name, protocol] of [['dns-tcp', 'TCP'], ['dns-udp', 'UDP']] as const) {
        if (dnsAddr.port !== portNamed(server, name, protocol)) sp(`DNS listens on port ${dnsAddr.port}, the container port "${name}" (${protocol}) is ${String(portNamed(server, name, protocol))}`);
      }
      if (!isWildcard(dnsAddr.host)) sp(`DNS listens on ${dnsAddr.host} only: the Service cannot reach it`);
    }
  }

  // ----- Konsul needs no Kubernetes API access -----
  for (const w of [server.workload, targetFor(ms, 'agent')?.workload]) {
    if (w !== undefined && podSpec(w).automountServiceAccountToken !== false) problems.push(`${where(w)}: automountServiceAccountToken must be false (Konsul does not use the Kubernetes API)`);
  }

  // ----- the StatefulSet's Services, probes and disruption budget -----
  const headless = find(ms, 'Service', String(stsSpec.serviceName));
  if (headless !== undefined && obj(headless.object.spec).publishNotReadyAddresses !== true) {
    sp(`Service ${nameOf(headless)} must publish not-ready addresses: servers find each other by these names before any is ready`);
  }
  const readiness = JSON.stringify(server.container.readinessProbe ?? null);
  if (!readiness.includes('/v1/status/leader')) sp('the readiness probe does not ask /v1/status/leader');
  else if (obj(server.container.readinessProbe).httpGet !== undefined) sp('/v1/status/leader answers 200 without a leader too: an httpGet readiness probe is always ready');
  const pdbs = ms.filter((m) => kindOf(m) === 'PodDisruptionBudget' && selects(obj(obj(obj(m.object.spec).selector).matchLabels), podLabels(sts)));
  if (pdbs.length !== 1) sp(`${pdbs.length} PodDisruptionBudgets select the servers, want 1`);
  for (const pdb of pdbs) {
    const spec = obj(pdb.object.spec);
    const quorum = Math.floor(replicas / 2) + 1;
    const ok = typeof spec.maxUnavailable === 'number' ? spec.maxUnavailable <= replicas - quorum && spec.maxUnavailable >= 1 : typeof spec.minAvailable === 'number' && spec.minAvailable >= quorum && spec.minAvailable < replicas;
    if (!ok) problems.push(`${where(pdb)}: must keep a quorum of ${quorum} of ${replicas} servers and still allow one disruption`);
  }

  // ----- the agents -----
  const agent = targetFor(ms, 'agent');
  if (agent === undefined) problems.push('no workload runs `konsul agent`');
  else {
    const ap = (msg: string): void => void problems.push(`${where(agent.workload)}: ${msg}`);
    if (kindOf(agent.workload) !== 'DaemonSet') ap('agents must run as a DaemonSet (one per node)');
    const cli = await parseWithCli(agent.args);
    if ('error' in cli) ap(`konsul rejects the arguments: ${cli.error}`);
    if ('missing' in cli) notes.push(`${cli.missing}: the agent's flags were checked for consistency only, not against the CLI`);
    const flags = flagValues(agent.args);
    const one = (name: string): string | undefined => flags.get(name)?.at(-1);
    const hostNetwork = podSpec(agent.workload).hostNetwork === true;
    const hostIp = SAMPLE_FIELDS['status.hostIP']!;
    // The agent's DNS interface is optional (`konsul agent` may not have --dns-addr yet); when it
    // is there, its ports must be declared and published like the HTTP port.
    const listeners: [string, string, string][] = [['http-addr', 'http', 'TCP']];
    if (one('dns-addr') !== undefined) listeners.push(['dns-addr', 'dns-tcp', 'TCP'], ['dns-addr', 'dns-udp', 'UDP']);
    else if (containerPorts(agent.container).some((d) => d.name?.startsWith('dns'))) ap('DNS ports are declared but no --dns-addr is given');
    for (const [flag, portName, protocol] of listeners) {
      const text = one(flag);
      if (text === undefined) {
        ap(`no --${flag}`);
        continue;
      }
      let addr: HostPort;
      try {
        addr = parseHostPort(text, `--${flag}`);
      } catch (err) {
        ap((err as Error).message);
        continue;
      }
      const declared = containerPorts(agent.container).find((d) => d.name === portName && d.protocol === protocol);
      if (declared === undefined || declared.containerPort !== addr.port) ap(`--${flag} port ${addr.port} is not the container port "${portName}" (${String(declared?.containerPort)})`);
      else if (declared.hostPort !== addr.port) ap(`container port "${portName}" is not published on the host as ${addr.port}`);
      // On the host's network the agent binds the node's IP (not every interface of the host).
      if (hostNetwork && addr.host !== hostIp) ap(`--${flag} binds ${addr.host}; on the host network it must be $(HOST_IP) (status.hostIP)`);
    }
    // The catalog must register the node under an address other nodes can reach.
    const advertise = one('advertise-addr') ?? (hostNetwork ? one('http-addr')?.replace(/:\d+$/, '') : undefined);
    if (advertise !== hostIp) ap(`the node is registered as ${String(advertise)}, want the host's IP (--advertise-addr=$(HOST_IP))`);
    checkServerAddresses(server, flags.get('retry-join') ?? [], 'the agent\'s --retry-join', ap);
    if (one('node') !== SAMPLE_FIELDS['spec.nodeName']) ap(`--node is ${String(one('node'))}, want the Kubernetes node's name (spec.nodeName)`);
    const dataDir = one('data-dir');
    if (dataDir === undefined || volumeUnder(agent, dataDir) === undefined) ap(`--data-dir ${String(dataDir)} is not on a mounted volume (the root filesystem is read-only)`);
    const configPath = one('config-file');
    if (configPath === undefined) ap('no --config-file: the ConfigMap is not used');
    else {
      const file = mountedConfigMapFile(ms, agent, configPath);
      if (typeof file === 'string') ap(file);
      else await checkAgentConfig(file.text, file.source, ap, notes);
    }
  }
  return { problems, notes };
}

/** agent/config.ts is the agent's own parser; it is being written, so it is looked up at run time. */
async function checkAgentConfig(text: string, source: string, p: (m: string) => void, notes: string[]): Promise<void> {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    return p(`${source}: ${(err as Error).message}`);
  }
  const parserFile = fileURLToPath(new URL('../../agent/config.ts', import.meta.url));
  if (!existsSync(parserFile)) {
    notes.push(`${source}: no agent/config.ts, parsed as JSON only`);
    return;
  }
  const mod = (await import(pathToFileURL(parserFile).href)) as { parseAgentConfigObject?: (raw: unknown, file: string) => unknown };
  if (typeof mod.parseAgentConfigObject !== 'function') {
    notes.push(`${source}: agent/config.ts has no parseAgentConfigObject, parsed as JSON only`);
    return;
  }
  try {
    mod.parseAgentConfigObject(raw, source);
  } catch (err) {
    p((err as Error).message);
  }
}
