// Checks Kubernetes manifests without a cluster: the object shape Kubernetes would demand (known
// apiVersion/kind pairs, names, required fields, selectors that match pod labels, ports, probes,
// volumes, downward-API fields), and how the objects refer to each other (Services to pods,
// StatefulSets to their headless Service, mounts to ConfigMaps). Konsul's own consistency rules
// (flags and config against the declared ports) are in konsul-check.ts.
//
// Every check returns problems as text ("file#doc Kind/name: what"), never throws on a bad
// manifest: a test asserts the list is empty, or that a broken manifest is reported.
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseAllDocuments } from 'yaml';

export type Obj = Record<string, unknown>;

export interface Manifest {
  readonly file: string;
  /** Position of the document in its file (0-based). */
  readonly index: number;
  readonly object: Obj;
}

/** Parses every document of every *.yaml / *.yml file in `dir` (YAML errors are thrown). */
export function loadManifests(dir: string): Manifest[] {
  const out: Manifest[] = [];
  for (const file of readdirSync(dir).filter((f) => /\.ya?ml$/.test(f)).sort()) {
    const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
    if (!Array.isArray(docs)) throw new Error(`${file}: not a YAML stream`);
    docs.forEach((doc, index) => {
      if (doc.errors.length > 0) throw new Error(`${file}#${index}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const object: unknown = doc.toJS();
      if (object === null || object === undefined) return; // an empty document (e.g. after a trailing ---)
      out.push({ file, index, object: object as Obj });
    });
  }
  return out;
}

// -----------------------------------------------------------------------------------------------
// Small typed accessors
// -----------------------------------------------------------------------------------------------

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);
export const obj = (v: unknown): Obj => (isObj(v) ? v : {});
export const arr = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);
export const objs = (v: unknown): Obj[] => arr(v).filter(isObj);
export const str = (v: unknown): string | undefined => (typeof v === 'string' ? v : undefined);

export const kindOf = (m: Manifest): string => str(m.object.kind) ?? '?';
export const nameOf = (m: Manifest): string => str(obj(m.object.metadata).name) ?? '?';
export const where = (m: Manifest): string => `${m.file}#${m.index} ${kindOf(m)}/${nameOf(m)}`;

// -----------------------------------------------------------------------------------------------
// Kubernetes' own validation rules (k8s.io/apimachinery/pkg/util/validation)
// -----------------------------------------------------------------------------------------------

const DNS1123_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;
const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const IANA_SVC_NAME = /^[a-z0-9]([a-z0-9-]*[a-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;
const LABEL_NAME = /^([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]$/;
const ENV_NAME = /^[-._a-zA-Z][-._a-zA-Z0-9]*$/;
const CONFIGMAP_KEY = /^[-._a-zA-Z0-9]+$/;
const QUANTITY = /^[+-]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?$/;

export function isDns1123Label(s: string): boolean {
  return s.length <= 63 && DNS1123_LABEL.test(s);
}

export function isDns1123Subdomain(s: string): boolean {
  return s.length <= 253 && s.split('.').every((l) => DNS1123_LABEL.test(l));
}

/** A port name: at most 15 characters, lowercase alphanumerics and '-', a letter somewhere, no "--". */
export function isPortName(s: string): boolean {
  return s.length <= 15 && IANA_SVC_NAME.test(s) && /[a-z]/.test(s) && !s.includes('--');
}

function isLabelKey(key: string): boolean {
  const slash = key.lastIndexOf('/');
  const prefix = slash < 0 ? '' : key.slice(0, slash);
  const name = slash < 0 ? key : key.slice(slash + 1);
  return (slash < 0 || isDns1123Subdomain(prefix)) && name.length <= 63 && LABEL_NAME.test(name);
}

/** The fields a downward-API fieldRef may name in a container's env. */
const FIELD_PATHS = new Set([
  'metadata.name',
  'metadata.namespace',
  'metadata.uid',
  'spec.nodeName',
  'spec.serviceAccountName',
  'status.hostIP',
  'status.hostIPs',
  'status.podIP',
  'status.podIPs',
]);
const LABEL_FIELD_PATH = /^metadata\.(labels|annotations)\['[^']+'\]$/;

/** Kinds this directory may contain, by apiVersion. */
export const KNOWN_KINDS: Readonly<Record<string, readonly string[]>> = {
  v1: ['Namespace', 'ConfigMap', 'Secret', 'Service', 'ServiceAccount'],
  'apps/v1': ['StatefulSet', 'DaemonSet', 'Deployment'],
  'policy/v1': ['PodDisruptionBudget'],
  'kustomize.config.k8s.io/v1beta1': ['Kustomization'],
};

/** Names Kubernetes requires to be DNS-1035 labels (they become DNS names or hostnames). */
const LABEL_NAMED_KINDS = new Set(['Namespace', 'Service']);

const WORKLOAD_KINDS = new Set(['StatefulSet', 'DaemonSet', 'Deployment']);
const PROTOCOLS = new Set(['TCP', 'UDP', 'SCTP']);

// -----------------------------------------------------------------------------------------------
// Label selectors
// -----------------------------------------------------------------------------------------------

/** True if every key/value of `selector` is among `labels` (an empty selector matches nothing here). */
export function selects(selector: Obj, labels: Obj): boolean {
  const entries = Object.entries(selector);
  return entries.length > 0 && entries.every(([k, v]) => labels[k] === v);
}

export function podLabels(workload: Manifest): Obj {
  return obj(obj(obj(obj(workload.object.spec).template).metadata).labels);
}

export function podSpec(workload: Manifest): Obj {
  return obj(obj(obj(workload.object.spec).template).spec);
}

export function workloads(ms: readonly Manifest[]): Manifest[] {
  return ms.filter((m) => WORKLOAD_KINDS.has(kindOf(m)));
}

export function find(ms: readonly Manifest[], kind: string, name: string): Manifest | undefined {
  return ms.find((m) => kindOf(m) === kind && nameOf(m) === name);
}

// -----------------------------------------------------------------------------------------------
// The checker
// -----------------------------------------------------------------------------------------------

/** Every problem found in the set of manifests (empty = all good). */
export function checkManifests(ms: readonly Manifest[]): string[] {
  const problems: string[] = [];
  const seen = new Map<string, string>();
  for (const m of ms) {
    const p = (msg: string): void => void problems.push(`${where(m)}: ${msg}`);
    const apiVersion = str(m.object.apiVersion);
    const kind = str(m.object.kind);
    if (apiVersion === undefined || kind === undefined) {
      p('apiVersion and kind are required');
      continue;
    }
    if (!(KNOWN_KINDS[apiVersion] ?? []).includes(kind)) {
      p(`unknown apiVersion/kind pair ${apiVersion} ${kind}`);
      continue;
    }
    if (kind === 'Kustomization') continue; // checked by checkKustomization
    checkMetadata(m, p);
    const id = `${kind}/${nameOf(m)}`;
    if (seen.has(id)) p(`duplicate object (also in ${seen.get(id)})`);
    seen.set(id, `${m.file}#${m.index}`);
    switch (kind) {
      case 'ConfigMap':
        checkConfigMap(m, p);
        break;
      case 'Service':
        checkService(m, ms, p);
        break;
      case 'StatefulSet':
      case 'DaemonSet':
      case 'Deployment':
        checkWorkload(m, ms, p);
        break;
      case 'PodDisruptionBudget':
        checkPdb(m, ms, p);
        break;
    }
  }
  return problems;
}

type Report = (message: string) => void;

function checkMetadata(m: Manifest, p: Report): void {
  const metadata = m.object.metadata;
  if (!isObj(metadata)) return p('metadata is required');
  const name = str(metadata.name);
  if (name === undefined || name === '') return p('metadata.name is required');
  const kind = kindOf(m);
  if (LABEL_NAMED_KINDS.has(kind) ? !(name.length <= 63 && DNS1035_LABEL.test(name)) : !isDns1123Subdomain(name)) {
    p(`metadata.name "${name}" is not a valid ${LABEL_NAMED_KINDS.has(kind) ? 'DNS-1035 label' : 'DNS-1123 subdomain'}`);
  }
  // A StatefulSet's pods are named NAME-ORDINAL and that is their hostname: it must stay a label.
  if (kind === 'StatefulSet' && !isDns1123Label(`${name}-${Math.max(0, Number(obj(m.object.spec).replicas ?? 1) - 1)}`)) {
    p(`pod names ${name}-N are not valid DNS-1123 labels`);
  }
  // Objects name no namespace: kustomization.yaml (or kubectl -n) places them.
  if (kind !== 'Namespace' && metadata.namespace !== undefined) p('metadata.namespace is set (leave it to kustomize / kubectl -n)');
  checkLabels(metadata.labels, 'metadata.labels', p);
}

function checkLabels(labels: unknown, what: string, p: Report): void {
  if (labels === undefined) return;
  if (!isObj(labels)) return p(`${what} must be a map`);
  for (const [k, v] of Object.entries(labels)) {
    if (!isLabelKey(k)) p(`${what}: invalid label key "${k}"`);
    if (typeof v !== 'string' || v.length > 63 || !LABEL_VALUE.test(v)) p(`${what}.${k}: invalid label value ${JSON.stringify(v)}`);
  }
}

function checkConfigMap(m: Manifest, p: Report): void {
  const data = m.object.data;
  if (!isObj(data) || Object.keys(data).length === 0) return p('data must be a non-empty map');
  for (const [k, v] of Object.entries(data)) {
    if (!CONFIGMAP_KEY.test(k) || k.length > 253) p(`data key "${k}" is not a valid ConfigMap key`);
    if (typeof v !== 'string') p(`data.${k} must be a string`);
  }
}

interface DeclaredPort {
  readonly name: string | undefined;
  readonly containerPort: number;
  readonly protocol: string;
  readonly hostPort: number | undefined;
}

/** The ports a container declares (protocol defaulted to TCP, as the API server does). */
export function containerPorts(container: Obj): DeclaredPort[] {
  return objs(container.ports).map((port) => ({
    name: str(port.name),
    containerPort: Number(port.containerPort),
    protocol: str(port.protocol) ?? 'TCP',
    hostPort: port.hostPort === undefined ? undefined : Number(port.hostPort),
  }));
}

const isPort = (n: unknown): boolean => Number.isInteger(n) && (n as number) >= 1 && (n as number) <= 65535;

function checkService(m: Manifest, ms: readonly Manifest[], p: Report): void {
  const spec = obj(m.object.spec);
  const type = str(spec.type) ?? 'ClusterIP';
  if (!['ClusterIP', 'NodePort', 'LoadBalancer'].includes(type)) p(`spec.type ${type} is not supported here`);
  if (spec.clusterIP !== undefined && spec.clusterIP !== 'None' && type === 'ClusterIP') p('spec.clusterIP must be None (headless) or left to Kubernetes');
  const selector = obj(spec.selector);
  const selected = workloads(ms).filter((w) => selects(selector, podLabels(w)));
  if (Object.keys(selector).length === 0) p('spec.selector is empty');
  else if (selected.length === 0) p(`spec.selector ${JSON.stringify(selector)} matches no workload's pod labels`);
  checkLabels(spec.selector, 'spec.selector', p);
  const ports = objs(spec.ports);
  if (ports.length === 0) p('spec.ports must not be empty');
  const names = new Set<string>();
  const pairs = new Set<string>();
  for (const [i, port] of ports.entries()) {
    const name = str(port.name);
    const protocol = str(port.protocol) ?? 'TCP';
    const at = `spec.ports[${i}]${name ? ` (${name})` : ''}`;
    if (name === undefined) {
      if (ports.length > 1) p(`${at}: a name is required when there are several ports`);
    } else {
      if (!isDns1123Label(name)) p(`${at}: name is not a DNS-1123 label`);
      if (names.has(name)) p(`${at}: duplicate port name`);
      names.add(name);
    }
    if (!isPort(port.port)) p(`${at}: port ${String(port.port)} is not in 1..65535`);
    if (!PROTOCOLS.has(protocol)) p(`${at}: unknown protocol ${protocol}`);
    const pair = `${String(port.port)}/${protocol}`;
    if (pairs.has(pair)) p(`${at}: port ${pair} declared twice`);
    pairs.add(pair);
    // The target must be a port of every selected pod, by name or by number, with the protocol.
    const target = port.targetPort ?? port.port;
    for (const w of selected) {
      const declared = objs(podSpec(w).containers).flatMap(containerPorts);
      const match = declared.find((d) => (typeof target === 'string' ? d.name === target : d.containerPort === target));
      if (match === undefined) p(`${at}: targetPort ${JSON.stringify(target)} is not a container port of ${kindOf(w)}/${nameOf(w)}`);
      else if (match.protocol !== protocol) p(`${at}: targetPort ${JSON.stringify(target)} is ${match.protocol} in ${kindOf(w)}/${nameOf(w)}, the Service says ${protocol}`);
    }
  }
}

function checkPdb(m: Manifest, ms: readonly Manifest[], p: Report): void {
  const spec = obj(m.object.spec);
  const selector = obj(obj(spec.selector).matchLabels);
  if (!workloads(ms).some((w) => selects(selector, podLabels(w)))) p(`spec.selector.matchLabels ${JSON.stringify(selector)} matches no workload's pod labels`);
  if ((spec.minAvailable === undefined) === (spec.maxUnavailable === undefined)) p('exactly one of spec.minAvailable and spec.maxUnavailable is required');
}

function checkWorkload(m: Manifest, ms: readonly Manifest[], p: Report): void {
  const kind = kindOf(m);
  const spec = obj(m.object.spec);
  const matchLabels = obj(obj(spec.selector).matchLabels);
  const labels = podLabels(m);
  if (obj(spec.selector).matchExpressions !== undefined) p('spec.selector.matchExpressions is not used in this directory');
  if (Object.keys(matchLabels).length === 0) p('spec.selector.matchLabels is required');
  else if (!selects(matchLabels, labels)) p(`spec.selector.matchLabels ${JSON.stringify(matchLabels)} does not match the pod template's labels ${JSON.stringify(labels)}`);
  checkLabels(obj(obj(spec.template).metadata).labels, 'spec.template.metadata.labels', p);
  if (kind !== 'DaemonSet' && spec.replicas !== undefined && !(Number.isInteger(spec.replicas) && (spec.replicas as number) >= 0)) p('spec.replicas must be a non-negative integer');

  const claimNames = new Set<string>();
  if (kind === 'StatefulSet') {
    const serviceName = str(spec.serviceName);
    const service = serviceName === undefined ? undefined : find(ms, 'Service', serviceName);
    if (serviceName === undefined) p('spec.serviceName is required');
    else if (service === undefined) p(`spec.serviceName ${serviceName}: no such Service`);
    else {
      if (obj(service.object.spec).clusterIP !== 'None') p(`spec.serviceName ${serviceName} is not a headless Service (clusterIP: None)`);
      if (!selects(obj(obj(service.object.spec).selector), labels)) p(`Service ${serviceName} does not select this StatefulSet's pods`);
    }
    for (const [i, claim] of objs(spec.volumeClaimTemplates).entries()) {
      const name = str(obj(claim.metadata).name);
      const at = `spec.volumeClaimTemplates[${i}]`;
      if (name === undefined || !isDns1123Label(name)) p(`${at}: metadata.name must be a DNS-1123 label`);
      else claimNames.add(name);
      const cs = obj(claim.spec);
      if (arr(cs.accessModes).length === 0) p(`${at}: spec.accessModes is required`);
      const storage = obj(obj(cs.resources).requests).storage;
      if (typeof storage !== 'string' || !QUANTITY.test(storage)) p(`${at}: spec.resources.requests.storage must be a quantity`);
    }
  }
  checkPodSpec(podSpec(m), claimNames, ms, p);
}

function checkPodSpec(spec: Obj, claimNames: ReadonlySet<string>, ms: readonly Manifest[], p: Report): void {
  const volumes = new Map<string, Obj>();
  for (const v of objs(spec.volumes)) {
    const name = str(v.name) ?? '';
    if (!isDns1123Label(name)) p(`volume "${name}": name must be a DNS-1123 label`);
    if (volumes.has(name) || claimNames.has(name)) p(`volume "${name}" is declared twice`);
    volumes.set(name, v);
    const configMap = str(obj(v.configMap).name);
    if (v.configMap !== undefined && (configMap === undefined || find(ms, 'ConfigMap', configMap) === undefined)) {
      p(`volume "${name}": ConfigMap ${String(configMap)} is not among the manifests`);
    }
  }
  const containers = objs(spec.containers);
  if (containers.length === 0) p('spec.template.spec.containers must not be empty');
  const containerNames = new Set<string>();
  const portNames = new Set<string>();
  const mounted = new Set<string>();
  for (const c of containers) {
    const cname = str(c.name) ?? '';
    const at = `container "${cname}"`;
    if (!isDns1123Label(cname)) p(`${at}: name must be a DNS-1123 label`);
    if (containerNames.has(cname)) p(`${at}: duplicate container name`);
    containerNames.add(cname);
    if (typeof c.image !== 'string' || c.image.trim() === '') p(`${at}: image is required`);

    const ports = containerPorts(c);
    const pairs = new Set<string>();
    for (const port of ports) {
      const pat = `${at} port ${port.name ?? port.containerPort}`;
      if (port.name !== undefined) {
        if (!isPortName(port.name)) p(`${pat}: name must be at most 15 lowercase alphanumerics or '-', with a letter`);
        if (portNames.has(port.name)) p(`${pat}: duplicate port name in the pod`);
        portNames.add(port.name);
      }
      if (!isPort(port.containerPort)) p(`${pat}: containerPort must be in 1..65535`);
      if (!PROTOCOLS.has(port.protocol)) p(`${pat}: unknown protocol ${port.protocol}`);
      if (port.hostPort !== undefined && !isPort(port.hostPort)) p(`${pat}: hostPort must be in 1..65535`);
      if (spec.hostNetwork === true && port.hostPort !== undefined && port.hostPort !== port.containerPort) p(`${pat}: with hostNetwork, hostPort must equal containerPort`);
      const pair = `${port.containerPort}/${port.protocol}`;
      if (pairs.has(pair)) p(`${pat}: ${pair} declared twice`);
      pairs.add(pair);
    }

    for (const probeName of ['startupProbe', 'readinessProbe', 'livenessProbe']) {
      if (c[probeName] !== undefined) checkProbe(obj(c[probeName]), ports, `${at} ${probeName}`, p);
    }

    const envNames = new Set<string>();
    for (const e of objs(c.env)) {
      const name = str(e.name) ?? '';
      const eat = `${at} env ${name}`;
      if (!ENV_NAME.test(name)) p(`${eat}: invalid name`);
      if (envNames.has(name)) p(`${eat}: declared twice`);
      envNames.add(name);
      if ((e.value === undefined) === (e.valueFrom === undefined)) p(`${eat}: exactly one of value and valueFrom is required`);
      if (e.valueFrom !== undefined) {
        const from = obj(e.valueFrom);
        const sources = Object.keys(from);
        if (sources.length !== 1) p(`${eat}: valueFrom needs exactly one source`);
        if (from.fieldRef !== undefined) {
          const path = str(obj(from.fieldRef).fieldPath) ?? '';
          if (!FIELD_PATHS.has(path) && !LABEL_FIELD_PATH.test(path)) p(`${eat}: fieldRef.fieldPath "${path}" is not a downward-API field`);
        } else if (from.configMapKeyRef !== undefined) {
          const ref = obj(from.configMapKeyRef);
          const cm = find(ms, 'ConfigMap', str(ref.name) ?? '');
          if (cm === undefined || typeof obj(cm.object.data)[str(ref.key) ?? ''] !== 'string') p(`${eat}: configMapKeyRef ${String(ref.name)}/${String(ref.key)} does not exist`);
        } else if (from.resourceFieldRef === undefined && from.secretKeyRef === undefined) {
          p(`${eat}: unknown valueFrom source ${sources.join(', ')}`);
        }
      }
    }
    // Kubernetes expands $(NAME) in command and args from the container's env; an unknown name
    // stays in the text as it is, which is never what was meant.
    for (const text of [...arr(c.command), ...arr(c.args)]) {
      if (typeof text !== 'string') {
        p(`${at}: command and args must be strings (${JSON.stringify(text)})`);
        continue;
      }
      for (const ref of text.matchAll(/\$\(([^)]*)\)/g)) if (!envNames.has(ref[1]!)) p(`${at}: $(${ref[1]}) in "${text}" is not an env variable of the container`);
    }

    const paths = new Set<string>();
    for (const vm of objs(c.volumeMounts)) {
      const name = str(vm.name) ?? '';
      const path = str(vm.mountPath) ?? '';
      if (!volumes.has(name) && !claimNames.has(name)) p(`${at}: volumeMount "${name}" matches no volume or volumeClaimTemplate`);
      if (!path.startsWith('/')) p(`${at}: volumeMount "${name}": mountPath must be absolute`);
      if (paths.has(path)) p(`${at}: two volumes mounted at ${path}`);
      paths.add(path);
      mounted.add(name);
    }

    const requests = obj(obj(c.resources).requests);
    for (const r of ['cpu', 'memory']) {
      const q = requests[r];
      if (q === undefined) p(`${at}: resources.requests.${r} is required`);
      else if (!QUANTITY.test(String(q))) p(`${at}: resources.requests.${r} ${String(q)} is not a quantity`);
    }
    for (const [r, q] of Object.entries(obj(obj(c.resources).limits))) if (!QUANTITY.test(String(q))) p(`${at}: resources.limits.${r} ${String(q)} is not a quantity`);
  }
  for (const name of [...volumes.keys(), ...claimNames]) if (!mounted.has(name)) p(`volume "${name}" is mounted by no container`);

  // On the host's network a pod uses the node's resolver unless dnsPolicy says otherwise, and
  // cluster names (NAME.NAMESPACE.svc) do not resolve there.
  const args = containers.flatMap((c) => [...arr(c.command), ...arr(c.args)]).map(String);
  if (spec.hostNetwork === true && args.some((a) => /\.svc\b/.test(a)) && spec.dnsPolicy !== 'ClusterFirstWithHostNet') {
    p('hostNetwork with cluster DNS names in the arguments needs dnsPolicy: ClusterFirstWithHostNet');
  }
}

function checkProbe(probe: Obj, ports: readonly DeclaredPort[], at: string, p: Report): void {
  const handlers = ['httpGet', 'tcpSocket', 'exec', 'grpc'].filter((h) => probe[h] !== undefined);
  if (handlers.length !== 1) return p(`${at}: exactly one of httpGet, tcpSocket, exec, grpc is required (has ${handlers.join(', ') || 'none'})`);
  const tcpPort = (port: unknown): boolean =>
    ports.some((d) => d.protocol === 'TCP' && (typeof port === 'string' ? d.name === port : d.containerPort === port));
  const handler = obj(probe[handlers[0]!]);
  switch (handlers[0]) {
    case 'httpGet':
      if (!String(handler.path ?? '/').startsWith('/')) p(`${at}: httpGet.path must start with /`);
      if (!tcpPort(handler.port)) p(`${at}: httpGet port ${JSON.stringify(handler.port)} is not a declared TCP port of the container`);
      break;
    case 'tcpSocket':
    case 'grpc':
      if (!tcpPort(handler.port)) p(`${at}: port ${JSON.stringify(handler.port)} is not a declared TCP port of the container`);
      break;
    case 'exec': {
      const command = arr(handler.command);
      if (command.length === 0 || command.some((x) => typeof x !== 'string')) return p(`${at}: exec.command must be a non-empty list of strings`);
      // An exec probe that calls the container's own HTTP API must use a declared port.
      for (const url of command.join(' ').matchAll(/http:\/\/[^'"\s]*?:(\d+)\//g)) {
        if (!tcpPort(Number(url[1]))) p(`${at}: exec probe calls port ${url[1]}, not a declared TCP port of the container`);
      }
      break;
    }
  }
  for (const field of ['periodSeconds', 'timeoutSeconds', 'failureThreshold', 'successThreshold']) {
    if (probe[field] !== undefined && !(Number.isInteger(probe[field]) && (probe[field] as number) >= 1)) p(`${at}: ${field} must be a positive integer`);
  }
}

/** kustomization.yaml must list every other manifest file of the directory, and nothing else. */
export function checkKustomization(ms: readonly Manifest[]): string[] {
  const k = ms.find((m) => kindOf(m) === 'Kustomization');
  if (k === undefined) return ['no kustomization.yaml'];
  const listed = arr(k.object.resources).map(String).sort();
  const files = [...new Set(ms.filter((m) => m !== k).map((m) => m.file))].sort();
  const problems: string[] = [];
  for (const f of files) if (!listed.includes(f)) problems.push(`${where(k)}: ${f} is not in resources`);
  for (const f of listed) if (!files.includes(f)) problems.push(`${where(k)}: resource ${f} is not a manifest of this directory`);
  return problems;
}
