// Helpers for the deploy/ tests: strict YAML loading, schema validation of Kubernetes objects
// (kubernetes-models' JSON schemas, made strict about unknown fields), and a small renderer of
// the kustomize features deploy/ uses, so the overlays are checked as they would be applied.
// No kustomize or kubectl binary is needed; the renderer refuses any kustomize field it does
// not implement rather than ignore it.
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
// One module per kind: the packages' index modules load every kind's schema (seconds).
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { HorizontalPodAutoscaler } from 'kubernetes-models/autoscaling/v2/HorizontalPodAutoscaler';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1/ServiceMonitor';
import { ScaledObject } from '@kubernetes-models/keda/keda.sh/v1alpha1/ScaledObject';

export const ROOT = fileURLToPath(new URL('../..', import.meta.url));
export const DEPLOY = join(ROOT, 'deploy');

// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Obj = Record<string, any>;

export const isObj = (v: unknown): v is Obj => typeof v === 'object' && v !== null && !Array.isArray(v);

export function rel(path: string): string {
  return relative(ROOT, path) || '.';
}

/** Every .yaml/.yml file under dir, sorted. */
export function yamlFiles(dir: string): string[] {
  return readdirSync(dir)
    .sort()
    .flatMap((name) => {
      const path = join(dir, name);
      if (statSync(path).isDirectory()) return yamlFiles(path);
      return /\.ya?ml$/.test(name) ? [path] : [];
    });
}

/**
 * The YAML documents of a file, parsed as YAML 1.1 like kubectl's parser (so an unquoted `yes`
 * or `on` is a boolean, as it would be there). Duplicate keys, syntax errors and warnings throw.
 */
export function loadYaml(file: string): unknown[] {
  const text = readFileSync(file, 'utf8');
  return parseAllDocuments(text, { version: '1.1', uniqueKeys: true, prettyErrors: true })
    .map((doc, i) => {
      const problems = [...doc.errors, ...doc.warnings];
      if (problems.length > 0) throw new Error(`${rel(file)} document ${i + 1}: ${problems.map((e) => e.message).join('; ')}`);
      return doc.toJS({ maxAliasCount: 0 }) as unknown;
    })
    .filter((v) => v !== null && v !== undefined);
}

// ---- schema validation ----------------------------------------------------------------------

interface ModelClass {
  prototype: { validate(this: unknown): void };
}

/** apiVersion/kind -> the model whose validate() checks the kind's JSON schema. */
export const SCHEMAS: Record<string, ModelClass> = {
  'apps/v1/Deployment': Deployment,
  'v1/Service': Service,
  'v1/ConfigMap': ConfigMap,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'autoscaling/v2/HorizontalPodAutoscaler': HorizontalPodAutoscaler,
  'monitoring.coreos.com/v1/ServiceMonitor': ServiceMonitor,
  'keda.sh/v1alpha1/ScaledObject': ScaledObject,
};

interface Visit {
  path: string;
  keys: string[];
  read: Set<string>;
  enumerated: boolean;
}

/**
 * Wraps every object of value in a Proxy that records which properties the validator looks up
 * and whether it enumerates the object. The compiled schema validators read each property their
 * schema declares and enumerate only maps (labels, data, resource lists...): a key that is
 * never read in an object that was never enumerated is not in the schema.
 */
function tracked(value: unknown, path: string, visits: Visit[]): unknown {
  if (Array.isArray(value)) return value.map((v, i) => tracked(v, `${path}/${i}`, visits));
  if (!isObj(value)) return value;
  const visit: Visit = { path, keys: Object.keys(value), read: new Set(), enumerated: false };
  visits.push(visit);
  const target = Object.fromEntries(Object.entries(value).map(([k, v]) => [k, tracked(v, `${path}/${k}`, visits)]));
  return new Proxy(target, {
    get(t, key, receiver) {
      if (typeof key === 'string') visit.read.add(key);
      return Reflect.get(t, key, receiver) as unknown;
    },
    has(t, key) {
      if (typeof key === 'string') visit.read.add(key);
      return Reflect.has(t, key);
    },
    ownKeys(t) {
      visit.enumerated = true;
      return Reflect.ownKeys(t);
    },
  });
}

/**
 * Problems of one Kubernetes object against its kind's schema: schema errors (types, required
 * fields, formats) and fields the schema does not have (as `kubectl apply` with its default
 * strict field validation would refuse them). Empty when it is valid.
 */
export function schemaProblems(obj: Obj): string[] {
  const id = `${obj.apiVersion}/${obj.kind}`;
  const model = SCHEMAS[id];
  if (!model) return [`no schema for ${id} (add it to SCHEMAS in test/deploy/kube.ts)`];
  const visits: Visit[] = [];
  try {
    model.prototype.validate.call(tracked(obj, '', visits));
  } catch (err) {
    return [(err as Error).message];
  }
  const problems: string[] = [];
  for (const v of visits) {
    // An object none of whose keys the validator looked at is free-form in the schema (or
    // itself an unknown field, reported at its parent).
    if (v.enumerated || v.read.size === 0) continue;
    for (const key of v.keys) if (!v.read.has(key)) problems.push(`unknown field ${v.path}/${key}`);
  }
  return problems;
}

// ---- kustomize ------------------------------------------------------------------------------

export const KUSTOMIZATION_NAMES = ['kustomization.yaml', 'kustomization.yml', 'Kustomization'];

export function kustomizationFile(dir: string): string | undefined {
  return KUSTOMIZATION_NAMES.map((n) => join(dir, n)).find((p) => existsSync(p));
}

/** The kustomize fields the renderer implements; anything else in a kustomization fails. */
const SUPPORTED = new Set(['apiVersion', 'kind', 'namespace', 'resources', 'components', 'configMapGenerator', 'images', 'patches']);

export function loadKustomization(dir: string): Obj {
  const file = kustomizationFile(dir);
  if (!file) throw new Error(`${rel(dir)}: no kustomization.yaml`);
  const docs = loadYaml(file);
  if (docs.length !== 1 || !isObj(docs[0])) throw new Error(`${rel(file)}: expected one mapping`);
  const k = docs[0];
  const expected = k.kind === 'Component' ? 'kustomize.config.k8s.io/v1alpha1' : 'kustomize.config.k8s.io/v1beta1';
  if (!['Kustomization', 'Component'].includes(k.kind) || k.apiVersion !== expected) {
    throw new Error(`${rel(file)}: kind Kustomization (${'kustomize.config.k8s.io/v1beta1'}) or Component (kustomize.config.k8s.io/v1alpha1), got ${k.apiVersion} ${k.kind}`);
  }
  for (const key of Object.keys(k)) if (!SUPPORTED.has(key)) throw new Error(`${rel(file)}: field ${key} is not supported by test/deploy/kube.ts`);
  return k;
}

export interface Rendered {
  obj: Obj;
  /** made by a configMapGenerator (kustomize would add a content hash to its name) */
  generated: boolean;
}

/** Parses a kustomize env file (KEY=VALUE lines, # comments) the way kustomize does. */
export function parseEnvFile(file: string): Record<string, string> {
  const out: Record<string, string> = {};
  readFileSync(file, 'utf8')
    .split('\n')
    .forEach((raw, i) => {
      const line = raw.trim();
      if (line === '' || line.startsWith('#')) return;
      const eq = line.indexOf('=');
      if (eq <= 0) throw new Error(`${rel(file)}:${i + 1}: expected KEY=VALUE, got ${JSON.stringify(raw)}`);
      const key = line.slice(0, eq);
      if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(key)) throw new Error(`${rel(file)}:${i + 1}: bad variable name ${key}`);
      if (key in out) throw new Error(`${rel(file)}:${i + 1}: ${key} set twice`);
      out[key] = line.slice(eq + 1);
    });
  return out;
}

function literal(s: string): [string, string] {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new Error(`literal ${JSON.stringify(s)} is not KEY=VALUE`);
  return [s.slice(0, eq), s.slice(eq + 1)];
}

function generatorData(dir: string, g: Obj): Record<string, string> {
  for (const key of Object.keys(g)) if (!['name', 'behavior', 'envs', 'literals'].includes(key)) throw new Error(`configMapGenerator field ${key} is not supported`);
  const data: Record<string, string> = {};
  for (const env of (g.envs ?? []) as string[]) Object.assign(data, parseEnvFile(resolve(dir, env)));
  for (const l of (g.literals ?? []) as string[]) {
    const [k, v] = literal(l);
    data[k] = v;
  }
  return data;
}

/** Strategic-merge-patch list keys of the Pod template fields (other lists are replaced). */
const MERGE_KEYS: Record<string, string> = {
  containers: 'name',
  initContainers: 'name',
  env: 'name',
  volumes: 'name',
  imagePullSecrets: 'name',
  volumeMounts: 'mountPath',
  ports: 'containerPort',
};

/** A strategic merge patch, for the maps and the keyed lists of MERGE_KEYS. */
export function strategicMerge(base: unknown, patch: unknown, field = ''): unknown {
  if (isObj(patch) && Object.keys(patch).some((k) => k.startsWith('$'))) throw new Error(`strategic merge directives (${Object.keys(patch).join(', ')}) are not supported`);
  if (isObj(base) && isObj(patch)) {
    const out: Obj = { ...base };
    for (const [k, v] of Object.entries(patch)) {
      if (v === null) delete out[k];
      else out[k] = k in base ? strategicMerge(base[k], v, k) : v;
    }
    return out;
  }
  const key = MERGE_KEYS[field];
  if (key && Array.isArray(base) && Array.isArray(patch)) {
    const out = [...base] as Obj[];
    for (const item of patch as Obj[]) {
      const i = out.findIndex((b) => b[key] === item[key]);
      if (i >= 0) out[i] = strategicMerge(out[i], item) as Obj;
      else out.push(item);
    }
    return out;
  }
  return patch;
}

function pointer(path: string): string[] {
  if (!path.startsWith('/')) throw new Error(`JSON pointer ${path} must start with /`);
  return path
    .slice(1)
    .split('/')
    .map((s) => s.replace(/~1/g, '/').replace(/~0/g, '~'));
}

/** RFC 6902 add, replace and remove (what kustomize's JSON patches here use). */
export function jsonPatch(doc: Obj, ops: Obj[]): Obj {
  const out = structuredClone(doc);
  for (const op of ops) {
    const parts = pointer(op.path as string);
    const last = parts.pop()!;
    let parent: Obj = out;
    for (const p of parts) {
      if (!isObj(parent[p]) && !Array.isArray(parent[p])) throw new Error(`${op.op} ${op.path}: ${p} does not exist`);
      parent = parent[p] as Obj;
    }
    const isArray = Array.isArray(parent);
    const index = isArray ? (last === '-' ? (parent as unknown[]).length : Number(last)) : -1;
    switch (op.op) {
      case 'add':
        if (isArray) (parent as unknown[]).splice(index, 0, op.value);
        else parent[last] = op.value;
        break;
      case 'replace':
      case 'remove':
        if (isArray ? !(index >= 0 && index < (parent as unknown[]).length) : !(last in parent)) throw new Error(`${op.op} ${op.path}: nothing there`);
        if (op.op === 'replace') parent[last] = op.value;
        else if (isArray) (parent as unknown[]).splice(index, 1);
        else delete parent[last];
        break;
      default:
        throw new Error(`JSON patch op ${op.op} is not supported`);
    }
  }
  return out;
}

function matchesTarget(obj: Obj, target: Obj): boolean {
  for (const key of Object.keys(target)) if (!['group', 'version', 'kind', 'name'].includes(key)) throw new Error(`patch target field ${key} is not supported`);
  const [group, version] = String(obj.apiVersion).includes('/') ? String(obj.apiVersion).split('/') : ['', String(obj.apiVersion)];
  return (
    (target.group === undefined || target.group === group) &&
    (target.version === undefined || target.version === version) &&
    (target.kind === undefined || target.kind === obj.kind) &&
    (target.name === undefined || target.name === obj.metadata?.name)
  );
}

/** The containers of a workload's Pod template (init containers included). */
export function podContainers(obj: Obj): Obj[] {
  const spec = obj.spec?.template?.spec;
  return spec ? [...((spec.containers ?? []) as Obj[]), ...((spec.initContainers ?? []) as Obj[])] : [];
}

function imageName(image: string): string {
  const noDigest = image.split('@')[0]!;
  const slash = noDigest.lastIndexOf('/');
  const colon = noDigest.lastIndexOf(':');
  return colon > slash ? noDigest.slice(0, colon) : noDigest;
}

function apply(dir: string, k: Obj, input: Rendered[], extraComponents: string[]): Rendered[] {
  let out = [...input];
  for (const r of (k.resources ?? []) as string[]) {
    const path = resolve(dir, r);
    if (!existsSync(path)) throw new Error(`${rel(dir)}: resource ${r} does not exist`);
    if (statSync(path).isDirectory()) {
      if (loadKustomization(path).kind !== 'Kustomization') throw new Error(`${rel(dir)}: resource ${r} is a Component (list it under components)`);
      out.push(...build(path));
    } else {
      out.push(...loadYaml(path).map((obj) => ({ obj: obj as Obj, generated: false })));
    }
  }
  for (const c of [...((k.components ?? []) as string[]), ...extraComponents]) {
    const path = resolve(dir, c);
    if (!existsSync(path) || !statSync(path).isDirectory()) throw new Error(`${rel(dir)}: component ${c} is not a directory`);
    const ck = loadKustomization(path);
    if (ck.kind !== 'Component') throw new Error(`${rel(dir)}: component ${c} is a ${ck.kind}, not a Component`);
    out = apply(path, ck, out, []);
  }
  for (const g of (k.configMapGenerator ?? []) as Obj[]) {
    const data = generatorData(dir, g);
    const behavior = (g.behavior as string | undefined) ?? 'create';
    const existing = out.find((r) => r.generated && r.obj.kind === 'ConfigMap' && r.obj.metadata.name === g.name);
    if (behavior === 'create') {
      if (existing) throw new Error(`${rel(dir)}: ConfigMap ${g.name} generated twice (use behavior: merge)`);
      out.push({ obj: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: g.name }, data }, generated: true });
    } else if (behavior === 'merge' || behavior === 'replace') {
      if (!existing) throw new Error(`${rel(dir)}: configMapGenerator ${g.name} has behavior ${behavior} but no such generated ConfigMap comes from the resources`);
      existing.obj = { ...existing.obj, data: behavior === 'merge' ? { ...existing.obj.data, ...data } : data };
    } else throw new Error(`${rel(dir)}: unknown configMapGenerator behavior ${behavior}`);
  }
  for (const p of (k.patches ?? []) as Obj[]) {
    for (const key of Object.keys(p)) if (!['path', 'patch', 'target'].includes(key)) throw new Error(`${rel(dir)}: patch field ${key} is not supported`);
    if ((p.path === undefined) === (p.patch === undefined)) throw new Error(`${rel(dir)}: a patch needs exactly one of path and patch`);
    let body: unknown;
    if (p.path !== undefined) {
      const file = resolve(dir, p.path as string);
      if (!existsSync(file)) throw new Error(`${rel(dir)}: patch ${p.path} does not exist`);
      const docs = loadYaml(file);
      if (docs.length !== 1) throw new Error(`${rel(file)}: a patch file holds one document`);
      body = docs[0];
    } else {
      const docs = parseAllDocuments(p.patch as string, { version: '1.1', uniqueKeys: true });
      if (docs.length !== 1 || docs[0]!.errors.length > 0) throw new Error(`${rel(dir)}: inline patch does not parse`);
      body = docs[0]!.toJS() as unknown;
    }
    const target = (p.target as Obj | undefined) ?? (isObj(body) ? { kind: body.kind, name: body.metadata?.name } : undefined);
    if (!target) throw new Error(`${rel(dir)}: a JSON patch needs a target`);
    const hits = out.filter((r) => matchesTarget(r.obj, target));
    if (hits.length === 0) throw new Error(`${rel(dir)}: patch ${p.path ?? JSON.stringify(target)} matches no resource`);
    for (const r of hits) r.obj = Array.isArray(body) ? jsonPatch(r.obj, body as Obj[]) : (strategicMerge(r.obj, body) as Obj);
  }
  for (const img of (k.images ?? []) as Obj[]) {
    for (const key of Object.keys(img)) if (!['name', 'newName', 'newTag'].includes(key)) throw new Error(`${rel(dir)}: images field ${key} is not supported`);
    let used = false;
    for (const r of out) {
      for (const c of podContainers(r.obj)) {
        if (imageName(c.image as string) !== img.name) continue;
        used = true;
        c.image = `${img.newName ?? img.name}${img.newTag !== undefined ? `:${img.newTag}` : ''}`;
      }
    }
    if (!used) throw new Error(`${rel(dir)}: images entry ${img.name} matches no container`);
  }
  if (k.namespace !== undefined) for (const r of out) r.obj = { ...r.obj, metadata: { ...r.obj.metadata, namespace: k.namespace } };
  return out;
}

/**
 * `kustomize build dir` for the features deploy/ uses (resources, components, configMapGenerator
 * with create/merge, strategic merge and JSON patches, images, namespace), with extra components
 * as if listed in its kustomization. Generated ConfigMaps keep their plain names (kustomize adds
 * a content hash to the name and to every reference; the tests check the references match).
 */
export function build(dir: string, extraComponents: string[] = []): Rendered[] {
  const k = loadKustomization(dir);
  if (k.kind !== 'Kustomization') throw new Error(`${rel(dir)} is a Component: build a Kustomization that uses it`);
  return apply(dir, k, [], extraComponents).map((r) => ({ ...r, obj: structuredClone(r.obj) }));
}

/** The files and directories a kustomization refers to, with what it expects them to be. */
export function references(dir: string): { field: string; path: string; expect: 'file' | 'kustomization' | 'component' | 'file-or-kustomization' }[] {
  const k = loadKustomization(dir);
  const refs: ReturnType<typeof references> = [];
  for (const r of (k.resources ?? []) as string[]) refs.push({ field: 'resources', path: resolve(dir, r), expect: 'file-or-kustomization' });
  for (const c of (k.components ?? []) as string[]) refs.push({ field: 'components', path: resolve(dir, c), expect: 'component' });
  for (const g of (k.configMapGenerator ?? []) as Obj[]) for (const e of (g.envs ?? []) as string[]) refs.push({ field: 'configMapGenerator.envs', path: resolve(dir, e), expect: 'file' });
  for (const p of (k.patches ?? []) as Obj[]) if (p.path !== undefined) refs.push({ field: 'patches.path', path: resolve(dir, p.path as string), expect: 'file' });
  return refs;
}

export function kustomizationDirs(dir: string = DEPLOY): string[] {
  const here = kustomizationFile(dir) ? [dir] : [];
  return [
    ...here,
    ...readdirSync(dir)
      .sort()
      .filter((n) => statSync(join(dir, n)).isDirectory())
      .flatMap((n) => kustomizationDirs(join(dir, n))),
  ];
}
