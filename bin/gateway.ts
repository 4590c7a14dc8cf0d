import { loadConfig } from '../shared/config.ts';
import { runMain } from './run.ts';
import { startGateway } from './server.ts';

await runMain('rt-gateway', () => startGateway(loadConfig('gateway')));
