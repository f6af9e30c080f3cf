/**
 * The Kubernetes manifests of docs/k8s (the teacher cached in shards by an Indexed Job, then merged)
 * agree with each other, with the CLI's flags and with the guide that shows them.
 */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { root } from './workspace.js';

const dir = join(root, 'docs', 'k8s');
const guide = join(root, 'docs', 'guides', 'caching-on-a-cluster.md');

// biome-ignore lint/suspicious/noExplicitAny: parsed YAML is checked field by field below
type Doc = any;

/** The one document of a manifest file, failing on YAML errors or several documents. */
function load(file: string): Doc {
  const docs = parseAllDocuments(readFileSync(join(dir, file), 'utf8'));
  expect(Array.isArray(docs) && docs.length, `${file}: one YAML document`).toBe(1);
  const [doc] = docs as Exclude<typeof docs, { empty: true }>;
  expect(
    doc!.errors.map((e) => e.message),
    `${file}: YAML errors`,
  ).toEqual([]);
  return doc!.toJS();
}

/** `--flag value` pairs of an argument list (a flag followed by another flag has the value true). */
function flagsOf(args: readonly string[]): Map<string, string | true> {
  const flags = new Map<string, string | true>();
  for (let i = 0; i < args.length; i++) {
    if (!args[i]!.startsWith('--')) continue;
    const next = args[i + 1];
    const value = next === undefined || next.startsWith('--') ? true : next;
    expect(flags.has(args[i]!), `${args[i]} given twice`).toBe(false);
    flags.set(args[i]!, value);
    if (value !== true) i++;
  }
  return flags;
}

/** Checks a Job's Pod template and returns its one container, with the claim mounted at each path. */
function podOf(job: Doc, file: string) {
  expect(job.apiVersion, `${file}: apiVersion`).toBe('batch/v1');
  expect(job.kind, `${file}: kind`).toBe('Job');
  expect(typeof job.metadata?.name, `${file}: metadata.name`).toBe('string');
  const pod = job.spec?.template?.spec;
  expect(pod, `${file}: spec.template.spec`).toBeTypeOf('object');
  expect(pod.restartPolicy, `${file}: restartPolicy`).toBe('Never');
  expect(pod.containers, `${file}: one container`).toHaveLength(1);
  const container = pod.containers[0];
  const argv: string[] = [...(container.command ?? []), ...(container.args ?? [])];
  for (const a of argv)
    expect(typeof a, `${file}: every argument is a string (quote numbers)`).toBe('string');
  // Every mount names a volume of the Pod, every volume is mounted.
  const volumes = new Map<string, Doc>(pod.volumes.map((v: Doc) => [v.name, v]));
  expect(volumes.size, `${file}: volume names are distinct`).toBe(pod.volumes.length);
  const mounts: Doc[] = container.volumeMounts ?? [];
  for (const m of mounts) expect([...volumes.keys()], `${file}: volumeMount ${m.name}`).toContain(m.name);
  expect(new Set(mounts.map((m) => m.name)), `${file}: every volume is mounted`).toEqual(
    new Set(volumes.keys()),
  );
  const claimAt = new Map<string, { claim: string; readOnly: boolean }>();
  for (const m of mounts) {
    const claim = volumes.get(m.name).persistentVolumeClaim?.claimName;
    if (claim !== undefined) claimAt.set(m.mountPath, { claim, readOnly: m.readOnly === true });
  }
  for (const key of ['requests', 'limits'])
    for (const r of ['cpu', 'memory'])
      expect(container.resources?.[key]?.[r], `${file}: resources.${key}.${r}`).toBeDefined();
  return { pod, container, argv, flags: flagsOf(argv), claimAt };
}

describe('docs/k8s manifests', () => {
  const files = readdirSync(dir)
    .filter((f) => f.endsWith('.yaml'))
    .sort();
  const pvc = load('cache-pvc.yaml');
  const shards = load('cache-teacher-job.yaml');
  const merge = load('merge-job.yaml');
  const shard = podOf(shards, 'cache-teacher-job.yaml');
  const merger = podOf(merge, 'merge-job.yaml');

  it('are the PVC, the shard Job and the merge Job', () => {
    expect(files).toEqual(['cache-pvc.yaml', 'cache-teacher-job.yaml', 'merge-job.yaml']);
  });

  it('claim a volume many nodes can write', () => {
    expect(pvc.apiVersion).toBe('v1');
    expect(pvc.kind).toBe('PersistentVolumeClaim');
    expect(pvc.spec.accessModes).toEqual(['ReadWriteMany']);
    expect(pvc.spec.resources.requests.storage).toMatch(/^\d+[GT]i$/);
  });

  it('run one shard of cache-teacher per index of an Indexed Job', () => {
    const spec = shards.spec;
    expect(spec.completionMode).toBe('Indexed');
    expect(shard.argv.slice(0, 2)).toEqual(['compress-ssl', 'cache-teacher']);
    for (const flag of ['--preset', '--teacher', '--split', '--shards', '--out'])
      expect(shard.flags.get(flag), `${flag} with a value`).toBeTypeOf('string');
    expect(['train', 'test']).toContain(shard.flags.get('--split'));
    // The index comes from JOB_COMPLETION_INDEX, which Kubernetes sets: no --shard, no override.
    expect(shard.flags.has('--shard')).toBe(false);
    expect((shard.container.env ?? []).map((e: Doc) => e.name)).not.toContain('JOB_COMPLETION_INDEX');
    const n = Number(shard.flags.get('--shards'));
    expect(Number.isInteger(n) && n >= 2, '--shards is an integer ≥ 2').toBe(true);
    expect(spec.completions, 'completions equals --shards').toBe(n);
    expect(Number.isInteger(spec.parallelism) && spec.parallelism >= 1 && spec.parallelism <= n).toBe(true);
    // A failed shard retries alone (it resumes from its file); that needs restartPolicy Never.
    expect(Number.isInteger(spec.backoffLimitPerIndex) && spec.backoffLimitPerIndex >= 1).toBe(true);
    expect(spec.backoffLimit, 'backoffLimit left to its per-index default').toBeUndefined();
    for (const rule of spec.podFailurePolicy?.rules ?? []) {
      if (rule.onExitCodes) expect(rule.onExitCodes.containerName).toBe(shard.container.name);
    }
  });

  it('write the shards to the claimed volume, mounted read-write', () => {
    const out = shard.claimAt.get(shard.flags.get('--out') as string);
    expect(out, '--out is the mount path of a claim').toEqual({ claim: pvc.metadata.name, readOnly: false });
    for (const [path, { claim, readOnly }] of shard.claimAt)
      if (path !== shard.flags.get('--out')) expect(readOnly, `${claim} at ${path} is read-only`).toBe(true);
    // The teacher's file lies on a mounted volume.
    const teacher = shard.flags.get('--teacher') as string;
    expect(
      [...shard.claimAt.keys()].some((p) => teacher.startsWith(`${p}/`)),
      `${teacher} on a volume`,
    ).toBe(true);
  });

  it('merge the same split on the same claim with the same image and command', () => {
    expect(merge.spec.completionMode ?? 'NonIndexed').toBe('NonIndexed');
    expect(merge.spec.completions ?? 1).toBe(1);
    expect(merger.argv.slice(0, 3)).toEqual(['compress-ssl', 'cache-teacher', 'merge']);
    expect([...merger.flags.keys()].sort()).toEqual(['--out', '--split']);
    expect(merger.flags.get('--split')).toBe(shard.flags.get('--split'));
    expect(merger.flags.get('--out')).toBe(shard.flags.get('--out'));
    expect(merger.claimAt.get(merger.flags.get('--out') as string)).toEqual({
      claim: pvc.metadata.name,
      readOnly: false,
    });
    expect(merger.container.image).toBe(shard.container.image);
    expect(merger.container.command).toEqual(shard.container.command);
    expect(merge.metadata.name).not.toBe(shards.metadata.name);
  });

  it('are what the guide shows and tells kubectl to wait for', () => {
    const text = readFileSync(guide, 'utf8');
    // The shard command as the guide prints it (lines joined at the trailing backslashes).
    const shown = /^compress-ssl cache-teacher --preset(?:[^\n]*\\\n)*[^\n]*/m.exec(text);
    expect(shown, 'the guide shows the shard command').not.toBeNull();
    expect(shown![0].replace(/\\\n/g, ' ').split(/\s+/)).toEqual(shard.argv);
    expect(text).toContain(merger.argv.join(' '));
    expect(text).toContain(`job/${shards.metadata.name}`);
    expect(text).toContain(`job/${merge.metadata.name}`);
    for (const file of files) expect(text).toContain(`../k8s/${file}`);
    // The merge Job's own comment waits for the shard Job by name.
    expect(readFileSync(join(dir, 'merge-job.yaml'), 'utf8')).toContain(`job/${shards.metadata.name}`);
  });
});
