// deploy/: the Kubernetes manifests. Every YAML document parses and validates against its kind's
// schema (kubernetes-models, KEDA and Prometheus Operator CRD schemas, strict about unknown
// fields); every kustomization refers to what exists; each overlay, alone and with each
// autoscaler component, renders (test/deploy/kube.ts) to objects that validate and agree with
// each other and with the server itself: option names, port, probe routes, the metric the
// autoscalers read, and a shutdown budget that covers the drain.
import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, join, relative } from 'node:path';
import { test } from 'node:test';
import { DockerfileParser } from 'dockerfile-ast';
import { envName, loadConfig, OPTIONS, SERVER_DEFAULTS } from '../../src/config.js';
import { Metrics } from '../../src/server/metrics.js';
import {
  build,
  DEPLOY,
  isObj,
  kustomizationDirs,
  kustomizationFile,
  loadKustomization,
  loadYaml,
  type Obj,
  podContainers,
  references,
  rel,
  type Rendered,
  ROOT,
  schemaProblems,
  yamlFiles,
} from './kube.js';

const OVERLAYS = readdirSync(join(DEPLOY, 'overlays')).filter((n) => statSync(join(DEPLOY, 'overlays', n)).isDirectory()).sort();
const AUTOSCALERS: Record<string, string[]> = {
  none: [],
  keda: [join(DEPLOY, 'components/keda')],
  hpa: [join(DEPLOY, 'components/hpa')],
};
const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as { version: string };

/** The image tag's suffix for each device, and the Dockerfile target that builds it. */
const IMAGES: Record<string, { suffix: string; target: string }> = {
  cpu: { suffix: '', target: 'cpu' },
  webgpu: { suffix: '-gpu', target: 'gpu' },
  cuda: { suffix: '-cuda', target: 'cuda' },
};
/** What the KV pool occupies of the pod's memory: on WebGPU it is in GPU memory. */
const hostKvBytes = (c: { device: string; kvCacheBytes: number }) => (c.device === 'webgpu' ? 0 : c.kvCacheBytes);

/** Every environment name the server reads: CALM_<FLAG> and the PORT/HOST aliases. */
const SERVER_ENV = new Set(OPTIONS.flatMap((o) => [envName(o.flag), ...(o.alias ? [o.alias] : [])]));

const renders = new Map<string, Rendered[]>();
function render(overlay: string, autoscaler: string): Obj[] {
  const key = `${overlay}+${autoscaler}`;
  if (!renders.has(key)) renders.set(key, build(join(DEPLOY, 'overlays', overlay), AUTOSCALERS[autoscaler]));
  return renders.get(key)!.map((r) => r.obj);
}

function only(objs: Obj[], kind: string): Obj {
  const found = objs.filter((o) => o.kind === kind);
  assert.equal(found.length, 1, `expected one ${kind}, found ${found.length}`);
  return found[0]!;
}

function server(objs: Obj[]): { deployment: Obj; container: Obj; config: Record<string, string> } {
  const deployment = only(objs, 'Deployment');
  const containers = podContainers(deployment).filter((c) => c.name === 'calm-serve');
  assert.equal(containers.length, 1, 'one container named calm-serve');
  const container = containers[0]!;
  const refs = ((container.envFrom ?? []) as Obj[]).filter((e) => e.configMapRef).map((e) => e.configMapRef.name as string);
  assert.equal(refs.length, 1, 'the container takes its settings from one ConfigMap');
  const cm = objs.find((o) => o.kind === 'ConfigMap' && o.metadata.name === refs[0]);
  assert.ok(cm, `envFrom names ConfigMap ${refs[0]}, which the overlay does not render`);
  return { deployment, container, config: cm.data as Record<string, string> };
}

function selects(selector: Record<string, string> | undefined, labels: Record<string, string> | undefined): boolean {
  return !!selector && Object.keys(selector).length > 0 && Object.entries(selector).every(([k, v]) => labels?.[k] === v);
}

/** A Kubernetes quantity in base units (cores, bytes). */
function quantity(q: string | number): number {
  const m = /^(\d+(?:\.\d+)?)(m|k|Ki|M|Mi|G|Gi|T|Ti)?$/.exec(String(q));
  assert.ok(m, `quantity ${q}`);
  const unit = { '': 1, m: 1e-3, k: 1e3, Ki: 1024, M: 1e6, Mi: 1024 ** 2, G: 1e9, Gi: 1024 ** 3, T: 1e12, Ti: 1024 ** 4 }[m[2] ?? '']!;
  return Number(m[1]) * unit;
}

function preStopSleepSeconds(container: Obj): number {
  const preStop = container.lifecycle?.preStop as Obj | undefined;
  assert.ok(preStop, 'a preStop hook');
  if (preStop.sleep) return Number(preStop.sleep.seconds);
  const cmd = preStop.exec?.command as string[] | undefined;
  assert.ok(cmd && cmd[0] === 'sleep' && cmd.length === 2 && /^\d+$/.test(cmd[1]!), `preStop is a plain sleep, got ${JSON.stringify(preStop)}`);
  return Number(cmd[1]);
}

test('every YAML document under deploy/ parses (YAML 1.1 as kubectl reads it, no duplicate keys) and names its kind', () => {
  const files = yamlFiles(DEPLOY);
  assert.ok(files.length >= 10, `found only ${files.length} YAML files`);
  for (const file of files) {
    const docs = loadYaml(file);
    assert.ok(docs.length >= 1, `${rel(file)} is empty`);
    for (const doc of docs) {
      assert.ok(isObj(doc), `${rel(file)}: a document is not a mapping`);
      assert.equal(typeof doc.apiVersion, 'string', `${rel(file)}: apiVersion`);
      assert.equal(typeof doc.kind, 'string', `${rel(file)}: kind`);
      if (!['Kustomization', 'Component'].includes(doc.kind as string)) assert.ok(doc.metadata?.name, `${rel(file)}: ${doc.kind} without metadata.name`);
    }
  }
});

test('every kustomization refers to files, directories and components that exist; every file in deploy/ is used', () => {
  const dirs = kustomizationDirs();
  const used = new Set<string>();
  for (const dir of dirs) {
    loadKustomization(dir);
    used.add(kustomizationFile(dir)!);
    for (const ref of references(dir)) {
      const where = `${rel(kustomizationFile(dir)!)} ${ref.field}: ${relative(dir, ref.path)}`;
      assert.ok(existsSync(ref.path), `${where} does not exist`);
      const isDir = statSync(ref.path).isDirectory();
      if (ref.expect === 'file') assert.ok(!isDir, `${where} should be a file`);
      if (isDir) {
        assert.ok(kustomizationFile(ref.path), `${where} has no kustomization.yaml`);
        const kind = loadKustomization(ref.path).kind as string;
        assert.equal(kind, ref.expect === 'component' ? 'Component' : 'Kustomization', `${where} is a ${kind}`);
      } else {
        assert.notEqual(ref.expect, 'component', `${where} should be a Component directory`);
        used.add(ref.path);
      }
    }
  }
  const files = (function walk(dir: string): string[] {
    return readdirSync(dir).flatMap((n) => (statSync(join(dir, n)).isDirectory() ? walk(join(dir, n)) : [join(dir, n)]));
  })(DEPLOY);
  const unused = files.filter((f) => !used.has(f) && basename(f) !== 'README.md').map(rel);
  assert.deepEqual(unused, [], 'files in deploy/ that no kustomization uses');
  // The optional components are offered in every overlay (listed, or commented out).
  const components = readdirSync(join(DEPLOY, 'components')).sort();
  assert.deepEqual(components, ['hpa', 'keda', 'monitoring']);
  for (const overlay of OVERLAYS) {
    const text = readFileSync(kustomizationFile(join(DEPLOY, 'overlays', overlay))!, 'utf8');
    for (const c of components) assert.match(text, new RegExp(`\\.\\./\\.\\./components/${c}\\b`), `overlay ${overlay} does not mention components/${c}`);
  }
});

test('every manifest validates against the schema of its kind, unknown fields included', () => {
  let checked = 0;
  for (const dir of kustomizationDirs()) {
    for (const ref of references(dir)) {
      if (ref.field !== 'resources' || statSync(ref.path).isDirectory()) continue;
      for (const doc of loadYaml(ref.path)) {
        assert.deepEqual(schemaProblems(doc as Obj), [], `${rel(ref.path)} ${(doc as Obj).kind}`);
        checked++;
      }
    }
  }
  assert.ok(checked >= 6, `checked only ${checked} manifests`);
});

test('the schema check refuses wrong types, missing fields and misspelt or unknown fields', () => {
  const deployment = loadYaml(join(DEPLOY, 'base/deployment.yaml'))[0] as Obj;
  const container = () => deployment.spec.template.spec.containers[0] as Obj;
  const mutate = (obj: Obj, change: (o: Obj) => void): Obj => {
    const copy = structuredClone(obj);
    change(copy);
    return copy;
  };
  assert.deepEqual(schemaProblems(deployment), []);
  const typo = mutate(deployment, (d) => {
    const c = d.spec.template.spec.containers[0] as Obj;
    c.readinessprobe = c.readinessProbe;
    delete c.readinessProbe;
  });
  assert.deepEqual(schemaProblems(typo), ['unknown field /spec/template/spec/containers/0/readinessprobe']);
  const wrongType = mutate(deployment, (d) => {
    d.spec.template.spec.containers[0].ports[0].containerPort = String(container().ports[0].containerPort);
  });
  assert.match(schemaProblems(wrongType).join(), /containerPort must be integer/);
  const missing = mutate(deployment, (d) => delete d.spec.selector);
  assert.match(schemaProblems(missing).join(), /spec must have required property selector/);
  const monitor = loadYaml(join(DEPLOY, 'components/monitoring/servicemonitor.yaml'))[0] as Obj;
  assert.deepEqual(schemaProblems(mutate(monitor, (m) => (m.spec.endpoints[0].scrapeIntervall = '5s'))), ['unknown field /spec/endpoints/0/scrapeIntervall']);
  assert.match(schemaProblems(mutate(monitor, (m) => (m.spec.endpoints[0].interval = '15 seconds'))).join(), /interval must match pattern/);
  const scaled = loadYaml(join(DEPLOY, 'components/keda/scaledobject.yaml'))[0] as Obj;
  assert.deepEqual(schemaProblems(mutate(scaled, (s) => (s.spec.minReplicas = 1))), ['unknown field /spec/minReplicas']);
  assert.match(schemaProblems(mutate(scaled, (s) => delete s.spec.scaleTargetRef)).join(), /scaleTargetRef/);
  assert.deepEqual(schemaProblems({ apiVersion: 'v1', kind: 'Pod', metadata: { name: 'x' } }), ['no schema for v1/Pod (add it to SCHEMAS in test/deploy/kube.ts)']);
});

for (const overlay of OVERLAYS) {
  for (const autoscaler of Object.keys(AUTOSCALERS)) {
    test(`overlay ${overlay} with autoscaler ${autoscaler}: renders, every object validates, and they fit together`, () => {
      const objs = render(overlay, autoscaler);
      for (const o of objs) assert.deepEqual(schemaProblems(o), [], `${o.kind} ${o.metadata?.name}`);
      const ids = objs.map((o) => `${o.kind}/${o.metadata.name}`);
      assert.equal(new Set(ids).size, ids.length, `duplicate objects: ${ids.join(', ')}`);

      const { deployment, container } = server(objs);
      const pod = deployment.spec.template.metadata.labels as Record<string, string>;
      assert.ok(selects(deployment.spec.selector.matchLabels, pod), 'the Deployment selects its own pods');
      for (const t of (deployment.spec.template.spec.topologySpreadConstraints ?? []) as Obj[]) assert.ok(selects(t.labelSelector.matchLabels, pod), 'topology spread selects the pods');

      const service = only(objs, 'Service');
      assert.ok(selects(service.spec.selector, pod), 'the Service selects the pods');
      const containerPorts = new Map(((container.ports ?? []) as Obj[]).map((p) => [p.name as string, p.containerPort as number]));
      for (const p of service.spec.ports as Obj[]) {
        const target = typeof p.targetPort === 'string' ? containerPorts.get(p.targetPort) : p.targetPort;
        assert.ok(target !== undefined && [...containerPorts.values()].includes(target), `Service port ${p.name} targets ${p.targetPort}, not a container port`);
      }
      const http = (service.spec.ports as Obj[]).find((p) => p.name === 'http');
      assert.ok(http, 'the Service has a port named http');

      const pdb = only(objs, 'PodDisruptionBudget');
      assert.ok(selects(pdb.spec.selector.matchLabels, pod), 'the PodDisruptionBudget selects the pods');

      const monitor = only(objs, 'ServiceMonitor');
      assert.ok(selects(monitor.spec.selector.matchLabels, service.metadata.labels), 'the ServiceMonitor selects the Service');
      for (const e of monitor.spec.endpoints as Obj[]) {
        assert.equal(e.port, 'http', 'ServiceMonitor scrapes the http port');
        assert.equal(e.path, '/metrics');
      }

      const autoscalers = objs.filter((o) => o.kind === 'ScaledObject' || o.kind === 'HorizontalPodAutoscaler');
      assert.equal(autoscalers.length, autoscaler === 'none' ? 0 : 1, 'at most one autoscaler per Deployment');
      for (const a of autoscalers) {
        const ref = a.spec.scaleTargetRef as Obj;
        assert.equal(ref.name, deployment.metadata.name, `${a.kind} scales the Deployment`);
        assert.equal(ref.kind ?? 'Deployment', 'Deployment');
        assert.equal(deployment.spec.replicas, undefined, `with ${a.kind} the Deployment leaves replicas to the autoscaler`);
        const min = a.spec.minReplicaCount ?? a.spec.minReplicas;
        const max = a.spec.maxReplicaCount ?? a.spec.maxReplicas;
        assert.ok(min >= 1 && max >= min, `${a.kind} replicas ${min}..${max}`);
      }
      if (autoscaler === 'none') assert.ok(deployment.spec.replicas >= 1, 'a fixed replica count without an autoscaler');
    });
  }
}

test('building keda and hpa together fails (both would drive one Deployment)', () => {
  assert.throws(() => build(join(DEPLOY, 'overlays', OVERLAYS[0]!), [...AUTOSCALERS.keda!, ...AUTOSCALERS.hpa!]), /remove \/spec\/replicas: nothing there/);
});

test('ConfigMap: every variable is a `calm serve` option and the server accepts the whole set', () => {
  for (const overlay of OVERLAYS) {
    const { config } = server(render(overlay, 'none'));
    const unknown = Object.keys(config).filter((k) => !SERVER_ENV.has(k));
    assert.deepEqual(unknown, [], `overlay ${overlay}: variables the server does not read`);
    for (const [k, v] of Object.entries(config)) assert.equal(typeof v, 'string', `${k} must be a string in a ConfigMap`);
    const c = loadConfig([], config);
    assert.ok(Object.keys(IMAGES).includes(c.device));
  }
  assert.equal(loadConfig([], server(render('cpu', 'none')).config).device, 'cpu');
  assert.equal(loadConfig([], server(render('gpu', 'none')).config).device, 'webgpu', 'the GPU overlay runs WebGPU (the CUDA provider copies the KV pool on every call)');
});

test('port and probes match the server: container port = the port it listens on, /ready and /health exist', () => {
  const routes = readFileSync(join(ROOT, 'src/server/health.ts'), 'utf8');
  for (const path of ['/ready', '/health']) assert.match(routes, new RegExp(`app\\.get\\('${path}'`), `src/server/health.ts serves ${path}`);
  for (const overlay of OVERLAYS) {
    const objs = render(overlay, 'none');
    const { container, config } = server(objs);
    const listens = loadConfig([], config).port;
    const http = ((container.ports ?? []) as Obj[]).find((p) => p.name === 'http');
    assert.ok(http, 'a container port named http');
    assert.equal(http.containerPort, listens, 'containerPort is the port the server listens on');
    assert.equal(listens, SERVER_DEFAULTS.port, 'the manifests keep the server default port');
    assert.equal(only(objs, 'Service').spec.ports.find((p: Obj) => p.name === 'http').port, SERVER_DEFAULTS.port);
    const probePath = (name: string) => {
      const probe = container[name] as Obj | undefined;
      assert.ok(probe?.httpGet, `${overlay}: ${name} is an HTTP probe`);
      assert.ok(probe.httpGet.port === 'http' || probe.httpGet.port === listens, `${name} probes the server's port`);
      return probe.httpGet.path as string;
    };
    assert.equal(probePath('startupProbe'), '/ready');
    assert.equal(probePath('readinessProbe'), '/ready');
    assert.equal(probePath('livenessProbe'), '/health');
    const startup = container.startupProbe as Obj;
    assert.ok(startup.periodSeconds * startup.failureThreshold >= 120, `${overlay}: the startup probe allows at least 2 min for the model load`);
  }
});

test('shutdown: terminationGracePeriodSeconds > preStop sleep + CALM_DRAIN_GRACE_MS', () => {
  // The server exits within CALM_DRAIN_GRACE_MS of SIGTERM whatever its engine does (it keeps the
  // end of the grace for cancelling and closing; test/server/failure.test.ts checks it).
  for (const overlay of OVERLAYS) {
    const { deployment, container, config } = server(render(overlay, 'none'));
    const drainS = loadConfig([], config).drainGraceMs / 1000;
    const sleepS = preStopSleepSeconds(container);
    const grace = deployment.spec.template.spec.terminationGracePeriodSeconds as number;
    assert.ok(sleepS >= 2, 'a preStop sleep of a few seconds so the endpoint removal propagates');
    assert.ok(grace > sleepS + drainS, `${overlay}: terminationGracePeriodSeconds ${grace} <= ${sleepS} + ${drainS}`);
  }
});

test('resources: CALM_THREADS and the KV cache fit the container; GPU pods ask for one GPU and tolerate its taint', () => {
  for (const overlay of OVERLAYS) {
    const { deployment, container, config } = server(render(overlay, 'none'));
    const c = loadConfig([], config);
    const { requests, limits } = container.resources as { requests: Record<string, string>; limits: Record<string, string> };
    assert.ok(requests?.cpu && requests.memory && limits?.memory, `${overlay}: CPU and memory requests and a memory limit`);
    for (const r of Object.keys(requests)) if (limits[r]) assert.ok(quantity(requests[r]!) <= quantity(limits[r]!), `${overlay}: ${r} request above its limit`);
    const cpus = quantity(limits.cpu ?? requests.cpu);
    assert.ok(c.intraOpThreads >= 1 && c.intraOpThreads <= Math.ceil(cpus), `${overlay}: CALM_THREADS ${c.intraOpThreads} should be set, at most the CPU limit ${cpus}`);
    const kv = hostKvBytes(c);
    assert.ok(kv + 1024 ** 3 <= quantity(limits.memory!), `${overlay}: the memory limit leaves 1 GiB beside the ${kv}-byte KV cache in host memory`);
    const spec = deployment.spec.template.spec as Obj;
    const gpus = limits['nvidia.com/gpu'];
    if (c.device !== 'cpu') {
      assert.equal(gpus, '1', `${overlay}: one GPU`);
      assert.equal(requests['nvidia.com/gpu'], gpus, 'GPU requests equal limits');
      assert.ok(((spec.tolerations ?? []) as Obj[]).some((t) => t.key === 'nvidia.com/gpu' && (t.operator === 'Exists' || t.value)), 'tolerates the nvidia.com/gpu taint');
      assert.ok(Object.keys(spec.nodeSelector ?? {}).length > 0 || spec.affinity?.nodeAffinity, 'selects GPU nodes');
      assert.ok((container.image as string).endsWith(IMAGES[c.device]!.suffix), `${overlay}: the ${IMAGES[c.device]!.target} image`);
    } else {
      assert.equal(gpus, undefined, `${overlay}: a CPU pod asks for no GPU`);
      assert.doesNotMatch(container.image as string, /-(cuda|gpu)$/);
    }
  }
});

test('autoscaling reads calm_requests_waiting, a gauge the server exports, as scraped from the Service', async () => {
  // (the server's registry with no model: the metric's type line is there before any series)
  const exposition = (await new Metrics({ defaultMetrics: false }).render()).body;
  assert.match(exposition, /^# TYPE calm_requests_waiting gauge$/m, 'the server exports calm_requests_waiting');
  const keda = render(OVERLAYS[0]!, 'keda');
  const service = only(keda, 'Service');
  const scaled = only(keda, 'ScaledObject');
  const triggers = scaled.spec.triggers as Obj[];
  assert.equal(triggers.length, 1);
  assert.equal(triggers[0]!.type, 'prometheus');
  const { query, threshold, serverAddress } = triggers[0]!.metadata as Record<string, string>;
  assert.match(query!, /^sum\(calm_requests_waiting\{[^}]*\}\)$/);
  assert.match(query!, new RegExp(`job="${service.metadata.name}"`), 'the query selects the series scraped from the Service (job = Service name)');
  assert.ok(Number(threshold) > 0);
  assert.match(serverAddress!, /^https?:\/\/[^/]+:\d+$/);
  const hpa = only(render(OVERLAYS[0]!, 'hpa'), 'HorizontalPodAutoscaler');
  const metric = (hpa.spec.metrics as Obj[])[0]!;
  assert.equal(metric.type, 'Pods');
  assert.equal(metric.pods.metric.name, 'calm_requests_waiting');
  assert.equal(metric.pods.target.type, 'AverageValue');
  assert.equal(String(metric.pods.target.averageValue), threshold, 'KEDA and the HPA scale at the same queue length');
});

test('security: non-root with the image user, no privilege escalation, read-only root with a writable /tmp', () => {
  const dockerfile = readFileSync(join(ROOT, 'Dockerfile'), 'utf8');
  const users = [...dockerfile.matchAll(/^USER\s+(\d+)(?::(\d+))?\s*$/gm)].map((m) => Number(m[1]));
  assert.ok(users.length >= 2);
  for (const overlay of OVERLAYS) {
    const { deployment, container } = server(render(overlay, 'none'));
    const pod = deployment.spec.template.spec as Obj;
    assert.equal(pod.securityContext.runAsNonRoot, true);
    for (const uid of users) assert.equal(pod.securityContext.runAsUser, uid, 'runAsUser is the image user');
    assert.equal(pod.automountServiceAccountToken, false);
    assert.equal(pod.enableServiceLinks, false, 'no Service link variables (a Service named calm would set CALM_PORT)');
    const sc = container.securityContext as Obj;
    assert.equal(sc.allowPrivilegeEscalation, false);
    assert.equal(sc.readOnlyRootFilesystem, true);
    assert.deepEqual(sc.capabilities.drop, ['ALL']);
    const tmp = ((container.volumeMounts ?? []) as Obj[]).find((m) => m.mountPath === '/tmp');
    assert.ok(tmp, '/tmp is mounted');
    assert.ok(((pod.volumes ?? []) as Obj[]).some((v) => v.name === tmp.name && v.emptyDir), '/tmp is an emptyDir');
  }
});

test('images: the overlays run this version of the image, the GPU one its WebGPU build, and the image selects the same device', () => {
  const dockerfile = DockerfileParser.parse(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
  /** CALM_DEVICE of each Dockerfile stage (own ENV only: every runtime stage sets its own). */
  const stageDevice = new Map<string, string>();
  let current = '';
  for (const ins of dockerfile.getInstructions()) {
    if (ins.getKeyword() === 'FROM') current = ins.getArguments().at(-1)!.getValue();
    if (ins.getKeyword() !== 'ENV') continue;
    for (const p of (ins as unknown as { getProperties(): { getName(): string; getValue(): string | null }[] }).getProperties()) {
      if (p.getName() === 'CALM_DEVICE') stageDevice.set(current, p.getValue() ?? '');
    }
  }
  for (const overlay of OVERLAYS) {
    const { container, config } = server(render(overlay, 'none'));
    const tag = String(container.image).split(':').pop();
    const device = loadConfig([], config).device;
    const image = IMAGES[device]!;
    assert.equal(tag, `${pkg.version}${image.suffix}`, `overlay ${overlay} image ${container.image}`);
    assert.equal(stageDevice.get(image.target) ?? 'cpu', device, `overlay ${overlay}: the Dockerfile's ${image.target} stage selects ${device} too`);
  }
  assert.equal(server(render('gpu', 'none')).container.image, `calm-serve:${pkg.version}-gpu`);
});
