// The Kubernetes manifests of this directory: every document parses, has the shape Kubernetes
// demands, refers to objects that exist, and agrees with Konsul's own parsers about flags, config
// and ports (manifest-check.ts, konsul-check.ts). The second half breaks parsed manifests on
// purpose and asserts that the checkers report each break.
import t from 'tap';
import { fileURLToPath } from 'node:url';
import { checkKonsul } from './konsul-check.ts';
import { arr, checkKustomization, checkManifests, find, isDns1123Subdomain, isPortName, kindOf, loadManifests, nameOf, obj, objs, podSpec, type Manifest, type Obj } from './manifest-check.ts';

const DIR = fileURLToPath(new URL('.', import.meta.url));
const manifests = loadManifests(DIR);

/** A deep copy of every manifest, for breaking one without touching the others. */
const copy = (): Manifest[] => manifests.map((m) => ({ ...m, object: structuredClone(m.object) }));

function get(ms: Manifest[], kind: string, name: string): Obj {
  const m = find(ms, kind, name);
  if (m === undefined) throw new Error(`no ${kind}/${name}`);
  return m.object;
}

const container = (ms: Manifest[], kind: string, name: string): Obj => objs(podSpec(find(ms, kind, name)!).containers)[0]!;
const portOf = (c: Obj, name: string, protocol = 'TCP'): Obj => objs(c.ports).find((p) => p.name === name && (p.protocol ?? 'TCP') === protocol)!;
const setArg = (c: Obj, prefix: string, value: string): void => {
  const args = arr(c.args).map(String);
  const i = args.findIndex((a) => a.startsWith(prefix));
  if (i < 0) throw new Error(`no argument ${prefix}`);
  args[i] = value;
  c.args = args;
};

t.test('the directory holds the expected objects', async (t) => {
  t.same(
    manifests.map((m) => `${m.file}: ${kindOf(m)}/${nameOf(m)}`),
    [
      'agent-daemonset.yaml: DaemonSet/konsul-agent',
      'configmap.yaml: ConfigMap/konsul-config',
      'kustomization.yaml: Kustomization/?',
      'namespace.yaml: Namespace/konsul',
      'server-pdb.yaml: PodDisruptionBudget/konsul-server',
      'server-services.yaml: Service/konsul-server',
      'server-services.yaml: Service/konsul',
      'server-statefulset.yaml: StatefulSet/konsul-server',
    ],
  );
  const sts = obj(get(manifests, 'StatefulSet', 'konsul-server').spec);
  t.equal(sts.replicas, 3);
  t.equal(objs(sts.volumeClaimTemplates).length, 1, 'one persistent volume per server');
  t.equal(obj(get(manifests, 'Service', 'konsul-server').spec).clusterIP, 'None', 'headless');
  t.equal(podSpec(find(manifests, 'DaemonSet', 'konsul-agent')!).hostNetwork, true, 'agents on the host network');
});

t.test('every manifest has a valid Kubernetes shape and consistent references', async (t) => {
  t.same(checkManifests(manifests), []);
  t.same(checkKustomization(manifests), [], 'kustomization.yaml lists every manifest');
});

t.test('flags, config files and ports agree with Konsul\'s own parsers', async (t) => {
  const { problems, notes } = await checkKonsul(manifests);
  t.same(problems, []);
  for (const note of notes) t.comment(`not checked: ${note}`);
});

t.test('validation helpers follow Kubernetes\' rules', async (t) => {
  t.ok(isPortName('dns-udp'));
  t.ok(isPortName('a23456789012345'), '15 characters');
  t.notOk(isPortName('a234567890123456'), '16 characters');
  t.notOk(isPortName('8500'), 'needs a letter');
  t.notOk(isPortName('dns--udp'), 'no double hyphen');
  t.notOk(isPortName('Http'), 'lowercase');
  t.ok(isDns1123Subdomain('konsul-server.example'));
  t.notOk(isDns1123Subdomain('konsul_server'));
  t.notOk(isDns1123Subdomain('-konsul'));
});

/** Breaks a copy of the manifests with `mutate`, and expects a report matching `expected`. */
function breaks(name: string, mutate: (ms: Manifest[]) => void, expected: RegExp, which: 'shape' | 'konsul' = 'shape'): void {
  t.test(`reports: ${name}`, async (t) => {
    const ms = copy();
    mutate(ms);
    const problems = which === 'shape' ? [...checkManifests(ms), ...checkKustomization(ms)] : (await checkKonsul(ms)).problems;
    t.ok(
      problems.some((p) => expected.test(p)),
      `a problem matching ${expected}; got:\n${problems.join('\n') || '(none)'}`,
    );
  });
}

// Kubernetes' object shape
breaks('a workload selector that does not match its pod labels', (ms) => {
  obj(obj(get(ms, 'StatefulSet', 'konsul-server').spec).selector).matchLabels = { 'app.kubernetes.io/name': 'konsul', 'app.kubernetes.io/component': 'servers' };
}, /StatefulSet\/konsul-server: spec\.selector\.matchLabels .* does not match the pod template's labels/);
breaks('a Service selecting no pods', (ms) => {
  obj(get(ms, 'Service', 'konsul').spec).selector = { 'app.kubernetes.io/name': 'konsul', 'app.kubernetes.io/component': 'sever' };
}, /Service\/konsul: spec\.selector .* matches no workload's pod labels/);
breaks('a Service targetPort that no container declares', (ms) => {
  objs(obj(get(ms, 'Service', 'konsul').spec).ports)[0]!.targetPort = 'htttp';
}, /Service\/konsul: spec\.ports\[0\] \(http\): targetPort "htttp" is not a container port of StatefulSet\/konsul-server/);
breaks('a Service port whose protocol differs from the container\'s', (ms) => {
  objs(obj(get(ms, 'Service', 'konsul').spec).ports).find((p) => p.name === 'dns-udp')!.targetPort = 'dns-tcp';
}, /targetPort "dns-tcp" is TCP in StatefulSet\/konsul-server, the Service says UDP/);
breaks('a StatefulSet whose serviceName is not a headless Service', (ms) => {
  obj(get(ms, 'StatefulSet', 'konsul-server').spec).serviceName = 'konsul';
}, /spec\.serviceName konsul is not a headless Service/);
breaks('a StatefulSet whose serviceName does not exist', (ms) => {
  obj(get(ms, 'StatefulSet', 'konsul-server').spec).serviceName = 'konsul-servers';
}, /spec\.serviceName konsul-servers: no such Service/);
breaks('a port name longer than 15 characters', (ms) => {
  portOf(container(ms, 'StatefulSet', 'konsul-server'), 'dns-udp', 'UDP').name = 'dns-over-udp-port';
}, /port dns-over-udp-port: name must be at most 15/);
breaks('two ports with one name', (ms) => {
  portOf(container(ms, 'StatefulSet', 'konsul-server'), 'dns-udp', 'UDP').name = 'dns-tcp';
}, /port dns-tcp: duplicate port name in the pod/);
breaks('a probe on an undeclared port', (ms) => {
  obj(obj(container(ms, 'StatefulSet', 'konsul-server').livenessProbe).httpGet).port = 'api';
}, /livenessProbe: httpGet port "api" is not a declared TCP port/);
breaks('an exec probe calling an undeclared port', (ms) => {
  const probe = obj(obj(container(ms, 'StatefulSet', 'konsul-server').readinessProbe).exec);
  probe.command = arr(probe.command).map((x) => String(x).replace(':8500/', ':8501/'));
}, /readinessProbe: exec probe calls port 8501/);
breaks('a volumeMount without a volume', (ms) => {
  objs(container(ms, 'StatefulSet', 'konsul-server').volumeMounts).find((v) => v.name === 'data')!.name = 'konsul-data';
}, /volumeMount "konsul-data" matches no volume or volumeClaimTemplate/);
breaks('a volume of a ConfigMap that does not exist', (ms) => {
  obj(objs(podSpec(find(ms, 'DaemonSet', 'konsul-agent')!).volumes).find((v) => v.name === 'config')!.configMap).name = 'konsul-conf';
}, /DaemonSet\/konsul-agent: volume "config": ConfigMap konsul-conf is not among the manifests/);
breaks('an env fieldRef that the downward API does not have', (ms) => {
  obj(obj(objs(container(ms, 'DaemonSet', 'konsul-agent').env).find((e) => e.name === 'HOST_IP')!.valueFrom).fieldRef).fieldPath = 'status.hostIp';
}, /env HOST_IP: fieldRef\.fieldPath "status\.hostIp" is not a downward-API field/);
breaks('an argument naming an env variable the container does not have', (ms) => {
  setArg(container(ms, 'StatefulSet', 'konsul-server'), '--rpc-addr=', '--rpc-addr=$(MY_POD_IP):8300');
}, /\$\(MY_POD_IP\) in "--rpc-addr=\$\(MY_POD_IP\):8300" is not an env variable/);
breaks('a container without resource requests', (ms) => {
  delete obj(container(ms, 'DaemonSet', 'konsul-agent').resources).requests;
}, /resources\.requests\.cpu is required/);
breaks('an invalid object name', (ms) => {
  obj(get(ms, 'ConfigMap', 'konsul-config').metadata).name = 'Konsul_Config';
}, /metadata\.name "Konsul_Config" is not a valid DNS-1123 subdomain/);
breaks('an unknown apiVersion/kind pair', (ms) => {
  get(ms, 'PodDisruptionBudget', 'konsul-server').apiVersion = 'policy/v1beta2';
}, /unknown apiVersion\/kind pair policy\/v1beta2 PodDisruptionBudget/);
breaks('hostNetwork without ClusterFirstWithHostNet', (ms) => {
  delete podSpec(find(ms, 'DaemonSet', 'konsul-agent')!).dnsPolicy;
}, /needs dnsPolicy: ClusterFirstWithHostNet/);
breaks('a manifest left out of kustomization.yaml', (ms) => {
  const k = ms.find((m) => kindOf(m) === 'Kustomization')!;
  k.object.resources = arr(k.object.resources).filter((r) => r !== 'server-pdb.yaml');
}, /server-pdb\.yaml is not in resources/);

// Konsul's view
breaks('a config key Konsul does not know', (ms) => {
  const data = obj(get(ms, 'ConfigMap', 'konsul-config').data);
  data['server.json'] = JSON.stringify({ ...(JSON.parse(String(data['server.json'])) as Obj), bootstrap_expected: 3 });
}, /ConfigMap konsul-config key server\.json: .*unknown key "bootstrap_expected"/, 'konsul');
breaks('a flag Konsul does not know', (ms) => {
  setArg(container(ms, 'StatefulSet', 'konsul-server'), '--rpc-advertise=', '--advertise=$(POD_IP):8300');
}, /konsul rejects the arguments: .*unknown option '--advertise=/, 'konsul');
breaks('an HTTP port in the config that the container does not declare', (ms) => {
  const data = obj(get(ms, 'ConfigMap', 'konsul-config').data);
  data['server.json'] = JSON.stringify({ ...(JSON.parse(String(data['server.json'])) as Obj), http_addr: '0.0.0.0:8501' });
}, /the HTTP API listens on port 8501, the container port "http" is 8500/, 'konsul');
breaks('an RPC port in the args that the container does not declare', (ms) => {
  setArg(container(ms, 'StatefulSet', 'konsul-server'), '--rpc-addr=', '--rpc-addr=$(POD_IP):8301');
}, /the RPC listener is on port 8301, the container port "rpc" is 8300/, 'konsul');
breaks('bootstrap_expect different from the replica count', (ms) => {
  obj(get(ms, 'StatefulSet', 'konsul-server').spec).replicas = 5;
}, /bootstrap_expect is 3, the StatefulSet has 5 replicas/, 'konsul');
breaks('a retry-join list that misses a server', (ms) => {
  const c = container(ms, 'StatefulSet', 'konsul-server');
  c.args = arr(c.args).filter((a) => !String(a).includes('konsul-server-2.'));
}, /retry_join is \[.*\], want every server pod's name on the RPC port/, 'konsul');
breaks('a server advertising its pod IP', (ms) => {
  setArg(container(ms, 'StatefulSet', 'konsul-server'), '--rpc-advertise=', '--rpc-advertise=$(POD_IP):8300');
}, /the server advertises 10\.244\.1\.17:8300, want its stable name konsul-server-0\.konsul-server\.konsul\.svc:8300/, 'konsul');
breaks('servers started one by one', (ms) => {
  delete obj(get(ms, 'StatefulSet', 'konsul-server').spec).podManagementPolicy;
}, /podManagementPolicy must be Parallel/, 'konsul');
breaks('a headless Service hiding not-ready pods', (ms) => {
  delete obj(get(ms, 'Service', 'konsul-server').spec).publishNotReadyAddresses;
}, /must publish not-ready addresses/, 'konsul');
breaks('a data directory off the persistent volume', (ms) => {
  const data = obj(get(ms, 'ConfigMap', 'konsul-config').data);
  data['server.json'] = JSON.stringify({ ...(JSON.parse(String(data['server.json'])) as Obj), data_dir: '/tmp/konsul' });
}, /data_dir \/tmp\/konsul is not on a volumeClaimTemplate's volume/, 'konsul');
breaks('a readiness probe that is always ready', (ms) => {
  container(ms, 'StatefulSet', 'konsul-server').readinessProbe = { httpGet: { path: '/v1/status/leader', port: 'http' } };
}, /an httpGet readiness probe is always ready/, 'konsul');
breaks('a disruption budget that allows losing the quorum', (ms) => {
  obj(get(ms, 'PodDisruptionBudget', 'konsul-server').spec).maxUnavailable = 2;
}, /must keep a quorum of 2 of 3 servers/, 'konsul');
breaks('an agent HTTP port not published on the host', (ms) => {
  delete portOf(container(ms, 'DaemonSet', 'konsul-agent'), 'http').hostPort;
}, /container port "http" is not published on the host as 8500/, 'konsul');
breaks('an agent bound to a wildcard on the host network', (ms) => {
  setArg(container(ms, 'DaemonSet', 'konsul-agent'), '--http-addr=', '--http-addr=0.0.0.0:8500');
}, /--http-addr binds 0\.0\.0\.0; on the host network it must be \$\(HOST_IP\)/, 'konsul');
breaks('an agent joining the servers on their HTTP port', (ms) => {
  const c = container(ms, 'DaemonSet', 'konsul-agent');
  c.args = arr(c.args).map((a) => String(a).replace(/svc:8300$/, 'svc:8500'));
}, /the agent's --retry-join is \[.*:8500.*\], want/, 'konsul');
breaks('an agent registered under an address other nodes cannot reach', (ms) => {
  setArg(container(ms, 'DaemonSet', 'konsul-agent'), '--advertise-addr=', '--advertise-addr=127.0.0.1');
}, /the node is registered as 127\.0\.0\.1, want the host's IP/, 'konsul');
breaks('an agent config key Konsul does not know', (ms) => {
  const data = obj(get(ms, 'ConfigMap', 'konsul-config').data);
  data['agent.json'] = JSON.stringify({ ...(JSON.parse(String(data['agent.json'])) as Obj), retry_joins: [] });
}, /ConfigMap konsul-config key agent\.json: unknown key "retry_joins"/, 'konsul');
breaks('a pod that mounts a Kubernetes API token it does not need', (ms) => {
  delete podSpec(find(ms, 'StatefulSet', 'konsul-server')!).automountServiceAccountToken;
}, /StatefulSet\/konsul-server: automountServiceAccountToken must be false/, 'konsul');
