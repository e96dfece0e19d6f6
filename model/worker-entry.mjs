// Entry of worker threads that run TypeScript (the server's engine, data-parallel training):
// worker threads do not inherit tsx's module hooks, so register them, then load workerData.module.
import { register } from 'tsx/esm/api';
import { workerData } from 'node:worker_threads';

register();
await import(workerData.module);
