// The catalog's section of the FSM snapshot (fsm/snapshot.ts), and its move into another index space
// for a snapshot restore (fsm/restore.ts).
//
// Payload: UTF-8 JSON of the table's dump with a format number, {"v":1, ...CatalogTableDump}. The
// dump lists nodes, services and checks in their key order and every object is built field by field
// by the table, so two replicas with the same state write the same bytes. JSON rather than the KV
// section's binary layout: a catalog is thousands of small records with nested maps, not millions of
// keys, and the decoder checks every record with the same validators as the commands that made them.

import { checkCheckSpec, checkName, checkNodeSpec, checkServiceSpec, checkStringList, asObject, CATALOG_LIMITS } from './catalog-commands.ts';
import type { CatalogCheck, CatalogNode, CatalogNodeDump, CatalogService, CatalogTableDump } from './catalog.ts';
import { compareKeys } from './sorted-keys.ts';

const FORMAT = 1;
const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** True when the table has never been written (the section is then left out). */
export function isEmptyCatalogDump(dump: CatalogTableDump): boolean {
  return dump.index === 0 && dump.nodes.length === 0;
}

export function encodeCatalogSection(dump: CatalogTableDump): Uint8Array {
  return encoder.encode(JSON.stringify({ v: FORMAT, ...dump }));
}

/** Parses and checks a catalog section; `fail` throws the snapshot format's error. */
export function decodeCatalogSection(bytes: Uint8Array, fail: (message: string) => never): CatalogTableDump {
  let parsed: unknown;
  try {
    parsed = JSON.parse(decoder.decode(bytes));
  } catch {
    return fail('catalog section is not UTF-8 JSON');
  }
  const o = asObject(parsed);
  if (o === null) return fail('catalog section is not an object');
  if (o['v'] !== FORMAT) return fail(`unsupported catalog section format ${JSON.stringify(o['v'])}`);
  const index = readIndex(o['index'], 'index', fail);
  const nodesIndex = readIndex(o['nodesIndex'], 'nodesIndex', fail);
  const servicesIndex = readIndex(o['servicesIndex'], 'servicesIndex', fail);
  const checksIndex = readIndex(o['checksIndex'], 'checksIndex', fail);
  const lastExtinctionIndex = readIndex(o['lastExtinctionIndex'], 'lastExtinctionIndex', fail);
  if (!Array.isArray(o['nodes'])) return fail('catalog nodes must be an array');
  const nodes: CatalogNodeDump[] = [];
  let previousNode: string | undefined;
  const serviceNames = new Set<string>();
  for (const item of o['nodes'] as unknown[]) {
    const n = readNode(item, fail);
    const key = n.node.Node.toLowerCase();
    if (previousNode !== undefined && compareKeys(previousNode, key) >= 0) fail('catalog nodes out of order');
    previousNode = key;
    for (const s of n.services) serviceNames.add(s.Service.toLowerCase());
    nodes.push(n);
  }
  if (!Array.isArray(o['serviceIndexes'])) return fail('catalog serviceIndexes must be an array');
  const serviceIndexes: [string, number][] = [];
  let previousName: string | undefined;
  for (const item of o['serviceIndexes'] as unknown[]) {
    if (!Array.isArray(item) || item.length !== 2 || typeof item[0] !== 'string') fail('catalog service index entries must be [name, index]');
    const [name, value] = item as [string, unknown];
    if (previousName !== undefined && compareKeys(previousName, name) >= 0) fail('catalog service indexes out of order');
    if (!serviceNames.has(name)) fail(`catalog service index for ${JSON.stringify(name)}, which has no instances`);
    previousName = name;
    serviceIndexes.push([name, readIndex(value, 'service index', fail)]);
  }
  if (serviceIndexes.length !== serviceNames.size) fail('catalog service indexes do not cover every service');
  return { index, nodesIndex, servicesIndex, checksIndex, lastExtinctionIndex, nodes, serviceIndexes };
}

function readNode(value: unknown, fail: (message: string) => never): CatalogNodeDump {
  const o = asObject(value);
  if (o === null) return fail('catalog node entry is not an object');
  const nodeObject = asObject(o['node']);
  if (nodeObject === null) return fail('catalog node entry has no node');
  const { CreateIndex, ModifyIndex, ...spec } = nodeObject;
  const problem = checkNodeSpec(spec);
  if (problem) fail(`catalog node: ${problem}`);
  const node = { ...(spec as object), CreateIndex: readIndex(CreateIndex, 'node CreateIndex', fail), ModifyIndex: readIndex(ModifyIndex, 'node ModifyIndex', fail) } as CatalogNode;
  const index = readIndex(o['index'], 'node index', fail);
  if (!Array.isArray(o['services']) || !Array.isArray(o['checks'])) return fail('catalog node entry needs services and checks arrays');
  const services: CatalogService[] = [];
  let previous: string | undefined;
  for (const item of o['services'] as unknown[]) {
    const s = asObject(item);
    if (s === null) return fail('catalog service is not an object');
    const { Node, CreateIndex: c, ModifyIndex: m, ...serviceSpec } = s;
    const serviceProblem = checkServiceSpec(serviceSpec);
    if (serviceProblem) fail(`catalog service: ${serviceProblem}`);
    if (Node !== node.Node) fail('catalog service on another node');
    const key = (serviceSpec['ID'] as string).toLowerCase();
    if (previous !== undefined && compareKeys(previous, key) >= 0) fail('catalog services out of order');
    previous = key;
    services.push({ ...(serviceSpec as object), Node, CreateIndex: readIndex(c, 'service CreateIndex', fail), ModifyIndex: readIndex(m, 'service ModifyIndex', fail) } as CatalogService);
  }
  const checks: CatalogCheck[] = [];
  previous = undefined;
  const serviceIds = new Set(services.map((s) => s.ID.toLowerCase()));
  for (const item of o['checks'] as unknown[]) {
    const c = asObject(item);
    if (c === null) return fail('catalog check is not an object');
    const { Node, ServiceName, ServiceTags, CreateIndex: ci, ModifyIndex: mi, ...checkSpec } = c;
    const checkProblem = checkCheckSpec(checkSpec);
    if (checkProblem) fail(`catalog check: ${checkProblem}`);
    if (Node !== node.Node) fail('catalog check on another node');
    if (checkName(ServiceName, true) !== null || checkStringList(ServiceTags, CATALOG_LIMITS.tags, CATALOG_LIMITS.tagLength) !== null) fail('catalog check has a bad ServiceName or ServiceTags');
    const serviceId = checkSpec['ServiceID'] as string;
    if (serviceId !== '' && !serviceIds.has(serviceId.toLowerCase())) fail('catalog check for a service that is not on its node');
    const key = (checkSpec['CheckID'] as string).toLowerCase();
    if (previous !== undefined && compareKeys(previous, key) >= 0) fail('catalog checks out of order');
    previous = key;
    checks.push({
      ...(checkSpec as object),
      Node,
      ServiceName,
      ServiceTags,
      CreateIndex: readIndex(ci, 'check CreateIndex', fail),
      ModifyIndex: readIndex(mi, 'check ModifyIndex', fail),
    } as CatalogCheck);
  }
  return { node, index, services, checks };
}

function readIndex(value: unknown, what: string, fail: (message: string) => never): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < 0) return fail(`catalog ${what} is not an index`);
  return value;
}

/**
 * The dump as a snapshotRestore at `index` loads it (see fsm/restore.ts): indexes above the restore
 * entry's are lowered to it, and every table index becomes it (the restore changed everything there).
 */
export function catalogDumpForRestoreAt(dump: CatalogTableDump, index: number): CatalogTableDump {
  const cap = (n: number): number => (n > index ? index : n);
  return {
    index,
    nodesIndex: index,
    servicesIndex: index,
    checksIndex: index,
    lastExtinctionIndex: index,
    nodes: dump.nodes.map((n) => ({
      node: { ...n.node, CreateIndex: cap(n.node.CreateIndex), ModifyIndex: cap(n.node.ModifyIndex) },
      index,
      services: n.services.map((s) => ({ ...s, CreateIndex: cap(s.CreateIndex), ModifyIndex: cap(s.ModifyIndex) })),
      checks: n.checks.map((c) => ({ ...c, CreateIndex: cap(c.CreateIndex), ModifyIndex: cap(c.ModifyIndex) })),
    })),
    serviceIndexes: dump.serviceIndexes.map(([name]) => [name, index] as const),
  };
}
