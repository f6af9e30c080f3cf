import { CompressError } from '@compress/core';
import { type Command, Option } from 'commander';
import { type Config, configSchema } from './config.js';

/**
 * How a flag's string becomes a config value: a number, an integer, the string itself, a switch,
 * one of the schema's choices, or `--teacher-normalize`'s own syntax.
 */
type Kind = 'number' | 'int' | 'string' | 'switch' | 'choice' | 'normalize';

/** A command-line flag that sets one key of the config. */
export interface ConfigFlag {
  /** e.g. `--teacher-layout <layout>` (a switch has no value). */
  flag: string;
  /** The config key it sets, e.g. `teacher.layout`. */
  key: string;
  kind: Kind;
  help?: string;
}

/**
 * Every flag that sets a config key — the one list the commands' options, the parsing of their
 * values and the messages naming them come from. The choices of `choice` flags are the schema's own.
 */
export const configFlags: readonly ConfigFlag[] = [
  { flag: '--seed <n>', key: 'seed', kind: 'int', help: 'seed of everything random' },
  { flag: '--dataset <name>', key: 'data.dataset', kind: 'choice' },
  {
    flag: '--data-root <dir>',
    key: 'data.root',
    kind: 'string',
    help: 'dataset directory (image-folder: with train/ and val/)',
  },
  { flag: '--workers <n>', key: 'data.workers', kind: 'int', help: 'decode/augment worker threads' },
  {
    flag: '--train-subset <n>',
    key: 'data.trainSubset',
    kind: 'int',
    help: 'train on a seeded subset of this many images',
  },
  {
    flag: '--skip-corrupt',
    key: 'data.skipCorrupt',
    kind: 'switch',
    help: 'image-folder: leave out files that do not decode (checked before training)',
  },
  {
    flag: '--teacher <source>',
    key: 'teacher.source',
    kind: 'string',
    help: '"builtin", an .onnx model, a feature cache, or a JS module exporting a Teacher',
  },
  { flag: '--teacher-layout <layout>', key: 'teacher.layout', kind: 'choice' },
  {
    flag: '--teacher-normalize <norm>',
    key: 'teacher.normalize',
    kind: 'normalize',
    help: 'imagenet | none | "mean,std" | "m1,…,mC,s1,…,sC"',
  },
  {
    flag: '--teacher-channels <c>',
    key: 'teacher.channels',
    kind: 'choice',
    help: 'channels the teacher takes (3: gray images repeated)',
  },
  { flag: '--teacher-providers <p>', key: 'teacher.providers', kind: 'choice' },
  {
    flag: '--teacher-threads <n>',
    key: 'teacher.threads',
    kind: 'int',
    help: 'onnxruntime intra-op threads of an ONNX teacher (0: one per core)',
  },
  {
    flag: '--teacher-fingerprint <id>',
    key: 'teacher.fingerprint',
    kind: 'string',
    help: 'a stable name of the teacher and its settings, for a module teacher without a fingerprint',
  },
  {
    flag: '--student <arch>',
    key: 'student.arch',
    kind: 'string',
    help: 'student architecture (alexnet, resnet18, resnet50, mobilenetv2, *-small)',
  },
  { flag: '--width <w>', key: 'student.width', kind: 'number', help: 'student width multiplier' },
  {
    flag: '--engine <e>',
    key: 'student.engine',
    kind: 'choice',
    help: 'what runs the training step (auto: onnxruntime where installed)',
  },
  {
    flag: '--student-threads <n>',
    key: 'student.threads',
    kind: 'int',
    help: 'onnxruntime intra-op threads of the training step (0: one per core)',
  },
  { flag: '--epochs <n>', key: 'optim.epochs', kind: 'int' },
  { flag: '--max-steps <n>', key: 'optim.maxSteps', kind: 'int', help: 'stop after this many steps' },
  { flag: '--batch-size <n>', key: 'optim.batchSize', kind: 'int' },
  { flag: '--lr <lr>', key: 'optim.lr', kind: 'number' },
  { flag: '--queue-size <K>', key: 'loss.queueSize', kind: 'int' },
  { flag: '--temperature <T>', key: 'loss.temperature', kind: 'number' },
];

/** The flags that choose the layers below the config file: preset, budget and method. */
export const baseFlags = [
  { flag: '--preset <name>', key: 'preset', help: 'preset' },
  { flag: '--budget <budget>', key: 'budget', help: 'run length' },
] as const;

/** `--teacher-layout <layout>` → `--teacher-layout`. */
const flagName = (flag: string) => flag.split(' ')[0]!;
/** `--teacher-layout` → `teacherLayout`, the property commander gives it. */
const property = (flag: string) =>
  flagName(flag)
    .slice(2)
    .replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());

/** The schema node of a config key, with optional/default wrappers taken off. */
function schemaAt(key: string): unknown {
  let node: unknown = configSchema;
  for (const part of key.split('.')) {
    node = unwrap(node);
    const shape = (node as { shape?: Record<string, unknown> }).shape;
    if (!shape || !(part in shape)) throw new Error(`config flags: the schema has no key ${key}`);
    node = shape[part];
  }
  return unwrap(node);
}

function unwrap(node: unknown): unknown {
  let n = node as { unwrap?: () => unknown; def?: { type?: string } };
  while (n?.def?.type === 'optional' || n?.def?.type === 'default' || n?.def?.type === 'nullable') {
    n = (n.unwrap ? n.unwrap() : (n.def as unknown as { innerType: unknown }).innerType) as typeof n;
  }
  return n;
}

/** The values a config key may take, as the schema lists them (an enum, or a union of literals). */
export function choicesOf(key: string): string[] {
  const node = schemaAt(key) as { options?: unknown[]; def?: { type?: string; values?: unknown[] } };
  const literal = (n: unknown): unknown[] => {
    const d = (n as { def?: { type?: string; values?: unknown[] } }).def;
    return d?.type === 'literal' ? (d.values ?? []) : [];
  };
  if (node.def?.type === 'enum') return (node.options ?? []).map(String);
  if (node.def?.type === 'union') return (node.options ?? []).flatMap(literal).map(String);
  throw new Error(`config flags: ${key} is not an enum or a union of literals in the schema`);
}

/** Adds the preset/budget/config choosers and every config flag to a command. */
export function addConfigOptions(cmd: Command): Command {
  cmd.option('--config <file>', 'config file (JSON or YAML); flags override it');
  for (const { flag, key, help } of baseFlags) cmd.addOption(new Option(flag, help).choices(choicesOf(key)));
  for (const { flag, key, kind, help } of configFlags) {
    const option = new Option(flag, help);
    cmd.addOption(kind === 'choice' ? option.choices(choicesOf(key)) : option);
  }
  return cmd;
}

function number(value: string, flag: string, integer: boolean): number {
  const n = Number(value);
  if (value.trim() === '' || !Number.isFinite(n) || (integer && !Number.isInteger(n))) {
    throw new CompressError(
      'CONFIG',
      `${flag}: expected ${integer ? 'an integer' : 'a number'}, found "${value}"`,
      {
        input: flag.slice(2),
      },
    );
  }
  return n;
}

/**
 * `--teacher-normalize`: `imagenet`, `none`, `m,s` (one mean and std for every channel) or
 * `m1,…,mC,s1,…,sC` (C means, then C stds).
 */
export function parseNormalize(value: string): Config['teacher']['normalize'] {
  if (value === 'imagenet' || value === 'none') return value;
  const parts = value.split(',').map(Number);
  if (parts.length < 2 || parts.length % 2 !== 0 || parts.some((x) => !Number.isFinite(x))) {
    throw new CompressError(
      'CONFIG',
      `--teacher-normalize: expected imagenet, none, "mean,std" or "m1,…,mC,s1,…,sC", found "${value}"`,
      { input: 'teacher-normalize' },
    );
  }
  const half = parts.length / 2;
  return { mean: parts.slice(0, half), std: parts.slice(half) };
}

/** The config values the flags set (a partial config: only the keys of flags given). */
export function configFromFlags(flags: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const { flag, key, kind } of configFlags) {
    const raw = flags[property(flag)];
    if (raw === undefined) continue;
    const name = flagName(flag);
    let value: unknown;
    if (kind === 'switch') value = raw === true;
    else if (kind === 'number' || kind === 'int') value = number(String(raw), name, kind === 'int');
    else if (kind === 'normalize') value = parseNormalize(String(raw));
    else if (kind === 'choice') {
      const allowed = choicesOf(key);
      if (!allowed.includes(String(raw))) {
        throw new CompressError('CONFIG', `${name}: expected one of ${allowed.join(', ')}, found "${raw}"`, {
          input: name.slice(2),
        });
      }
      // a union of number literals (channels) takes the number
      const numeric = allowed.every((a) => Number.isFinite(Number(a)));
      value = numeric ? Number(raw) : raw;
    } else value = String(raw);
    const parts = key.split('.');
    let node = out;
    for (const part of parts.slice(0, -1)) node = (node[part] ??= {}) as Record<string, unknown>;
    node[parts.at(-1)!] = value;
  }
  return out;
}

/** The flag that set the value at `path` (or above it) in `fromFlags`, as `--flag value`. */
export function flagSource(fromFlags: unknown, path: string): string | undefined {
  const parts = path.split('.');
  for (let n = parts.length; n > 0; n--) {
    const key = parts.slice(0, n).join('.');
    const spec = configFlags.find((f) => f.key === key);
    if (!spec) continue;
    const value = parts
      .slice(0, n)
      .reduce<unknown>((v, k) => (v as Record<string, unknown> | undefined)?.[k], fromFlags);
    if (value !== undefined) {
      return `${flagName(spec.flag)} ${typeof value === 'string' ? value : JSON.stringify(value)}`;
    }
  }
  return undefined;
}
