import { baseConfig } from '@compress/vitest-config';
import { defineProject, mergeConfig } from 'vitest/config';

export default mergeConfig(baseConfig, defineProject({ test: { name: '@compress/onnx' } }));
