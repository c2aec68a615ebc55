import Fastify from 'fastify';
import { expect, test } from 'tstyche';
import profilingPlugin, { type TaskLabels, type WorkerStats } from '../../src';
import { profileWorker, withTaskLabels, type ProfileWorkerOptions } from '../../src/workers/worker';

const app = Fastify();

test('maxWorkers is a number option', () => {
  expect(app.register(profilingPlugin, { appName: 'greet', maxWorkers: 4 })).type.not.toRaiseError();
  expect(app.register).type.not.toBeCallableWith(profilingPlugin, { appName: 'greet', maxWorkers: '4' });
});

test('taskLabels() gives a value to send with a task; stats() tells about the workers', () => {
  expect(app.profiler.taskLabels()).type.toBe<TaskLabels | undefined>();
  expect(app.profiler.stats().workers).type.toBe<WorkerStats | undefined>();
});

test('the worker entry point: profileWorker and withTaskLabels', () => {
  expect(profileWorker()).type.toBe<void>();
  expect(profileWorker({ name: 'resize' })).type.toBe<void>();
  expect(profileWorker).type.not.toBeCallableWith({ name: 1 });
  expect<ProfileWorkerOptions>().type.toBe<{ name?: string }>();
  expect(withTaskLabels(app.profiler.taskLabels(), async () => 42)).type.toBe<Promise<number>>();
  expect(withTaskLabels(undefined, () => 'x')).type.toBe<string>();
  expect(withTaskLabels).type.not.toBeCallableWith({ route: 1 }, () => 1);
});
