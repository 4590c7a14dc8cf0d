import { loadConfig } from '../shared/config.ts';
import { runMain } from './run.ts';
import { startAllInOne } from './server.ts';

await runMain('rt', () => startAllInOne(loadConfig('embedded')));
