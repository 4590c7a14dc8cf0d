import { loadConfig } from '../shared/config.ts';
import { runMain } from './run.ts';
import { startAllInOne } from './server.ts';

await runMain('rt', async () => (await startAllInOne(loadConfig('embedded'))).stop);
