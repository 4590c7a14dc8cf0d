/**
 * The repository's own documents stand alone: every file they name and every relative link they
 * carry exists in the repository, and none points at documents outside it.
 */
import { existsSync, readFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
/** The team's notes that once sat next to the repository (spelled so that this file does not name them). */
const OUTSIDE = new RegExp(['PROTOCOL', 'DESIGN', 'STYLE'].map((n) => `\\b${n}\\.md`).join('|'));
const DOCS = ['README.md', 'docs/architecture.md', 'docs/protocol.md', 'client/README.md', 'deploy/README.md', 'bench/README.md', 'bin/README.md', 'tools/README.md', 'worker/README.md', 'shared/README.md', 'nginx/README.md'];

describe.each(DOCS)('%s', (doc) => {
  const text = readFileSync(resolve(root, doc), 'utf8');

  it('links only to files that exist', () => {
    const links = [...text.matchAll(/\]\(([^)#\s]+)(#[^)]*)?\)/g)].map((m) => m[1]!).filter((l) => !/^[a-z]+:/.test(l));
    for (const link of links) expect(existsSync(resolve(root, dirname(doc), link)), `${doc} links to ${link}`).toBe(true);
  });

  it('names only source files that exist', () => {
    const named = [...text.matchAll(/`((?:gateway|worker|shared|bin|client|test|bench|deploy|nginx)\/[\w./-]+\.(?:ts|lua|md|yaml|conf))`/g)].map((m) => m[1]!);
    for (const path of named) expect(existsSync(resolve(root, path)), `${doc} names ${path}`).toBe(true);
  });

  it('refers to no document outside the repository', () => {
    expect(text).not.toMatch(OUTSIDE);
  });
});

describe('docs/architecture.md', () => {
  it('is linked from the README', () => {
    expect(readFileSync(resolve(root, 'README.md'), 'utf8')).toContain('](docs/architecture.md)');
  });
});
