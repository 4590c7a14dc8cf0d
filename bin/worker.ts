import { loadConfig } from '../shared/config.ts';
import { runMain } from './run.ts';
import { startWorker } from './server.ts';

await runMain('rt-worker', () => startWorker(loadConfig('worker')));
