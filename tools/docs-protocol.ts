/**
 * Writes docs/protocol.md, rendered from the AsyncAPI document that shared/protocol/ builds from
 * the schemas the gateway validates with. With `--check`, writes nothing and exits 1 when the
 * committed page is stale (the unit tests check the same).
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { asyncApiDocument } from '../shared/protocol/asyncapi.ts';
import { renderProtocolMarkdown } from '../shared/protocol/markdown.ts';

const target = fileURLToPath(new URL('../docs/protocol.md', import.meta.url));
const page = renderProtocolMarkdown(asyncApiDocument());

if (process.argv.includes('--check')) {
  let current = '';
  try {
    current = readFileSync(target, 'utf8');
  } catch {
    // missing: stale
  }
  if (current !== page) {
    process.stderr.write('docs/protocol.md is out of date: run `npm run docs:protocol`\n');
    process.exit(1);
  }
} else {
  writeFileSync(target, page);
  process.stdout.write(`wrote ${target}\n`);
}
