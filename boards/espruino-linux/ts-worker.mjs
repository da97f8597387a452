// Starts a worker thread whose code is TypeScript: registers tsx's loader in the worker (loaders do not
// carry over from the thread that started it), then imports workerData.module.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);
