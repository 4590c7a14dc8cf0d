/**
 * The README's configuration table, made from the schema in shared/config.ts: printed, or with
 * `--write` put into README.md in place of the table that is there (a unit test checks they match).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { configTable } from '../shared/config.ts';

const HEADER = '| Variable | Default | Meaning |';

if (process.argv.includes('--write')) {
  const path = new URL('../README.md', import.meta.url);
  const readme = readFileSync(path, 'utf8');
  const start = readme.indexOf(HEADER);
  if (start < 0) throw new Error(`README.md has no table starting with ${HEADER}`);
  const end = readme.indexOf('\n\n', start);
  writeFileSync(path, readme.slice(0, start) + configTable() + readme.slice(end < 0 ? readme.length : end));
  process.stdout.write('README.md: configuration table updated\n');
} else {
  process.stdout.write(configTable() + '\n');
}
