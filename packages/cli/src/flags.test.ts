import { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import { configSchema } from './config.js';
import { addConfigOptions, choicesOf, configFlags, configFromFlags, flagSource } from './flags.js';

describe('config flags', () => {
  it('name keys of the schema, and take their choices from it', () => {
    for (const { key } of configFlags) expect(() => choicesOf(key)).not.toThrow(/has no key/);
    expect(choicesOf('data.dataset')).toEqual([...configSchema.shape.data.shape.dataset.options]);
    expect(choicesOf('teacher.channels')).toEqual(['1', '3']);
    expect(choicesOf('preset')).toEqual(['fashion-mnist', 'imagenet']);
  });

  it('become the options of a command, choices included', () => {
    const cmd = addConfigOptions(new Command('x'));
    const layout = cmd.options.find((o) => o.long === '--teacher-layout');
    expect(layout?.argChoices).toEqual(['NCHW', 'NHWC']);
    expect(cmd.options.map((o) => o.long)).toEqual(
      expect.arrayContaining([
        '--config',
        '--preset',
        '--budget',
        ...configFlags.map((f) => f.flag.split(' ')[0]),
      ]),
    );
  });

  it('turn flag values into typed config values, and name the flag of a key', () => {
    const values = configFromFlags({
      seed: '3',
      teacherChannels: '3',
      teacherNormalize: '0.5,0.25',
      skipCorrupt: true,
      lr: '0.1',
    });
    expect(values).toEqual({
      seed: 3,
      data: { skipCorrupt: true },
      teacher: { channels: 3, normalize: { mean: [0.5], std: [0.25] } },
      optim: { lr: 0.1 },
    });
    expect(flagSource(values, 'optim.lr')).toBe('--lr 0.1');
    expect(() => configFromFlags({ workers: '1.5' })).toThrow('--workers: expected an integer, found "1.5"');
    expect(() => configFromFlags({ dataset: 'mnist' })).toThrow(
      '--dataset: expected one of fashion-mnist, cifar10, image-folder, found "mnist"',
    );
  });
});
