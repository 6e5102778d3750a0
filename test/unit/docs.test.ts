import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { configurationReference } from '../../src/config/reference.js';

/** GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens. */
function anchorOf(heading: string): string {
  return heading
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{N}\- _]/gu, '')
    .replace(/ /g, '-');
}

async function documents(): Promise<string[]> {
  const docs = (await readdir('docs')).filter((name) => name.endsWith('.md')).map((name) => path.join('docs', name));
  return ['README.md', 'storage/README.md', ...docs];
}

describe('the README and docs/', () => {
  it('docs/configuration.md is what the schema generates (else: npm run docs:config)', async () => {
    const written = await readFile('docs/configuration.md', 'utf8');
    assert.equal(written, configurationReference(), 'docs/configuration.md is stale: run `npm run docs:config` and commit the result');
  });

  it('the README is a front page of at most 300 lines', async () => {
    const lines = (await readFile('README.md', 'utf8')).split('\n').length;
    assert.ok(lines <= 300, `README.md has ${lines} lines`);
  });

  it('every link between the documents reaches a file, and a heading when it names one', async () => {
    const broken: string[] = [];
    const anchors = new Map<string, Set<string>>();
    const anchorsOf = async (file: string) => {
      let found = anchors.get(file);
      if (!found) {
        const text = await readFile(file, 'utf8');
        found = new Set([...text.replace(/```[\s\S]*?```/g, '').matchAll(/^#{1,6} (.+)$/gm)].map((match) => anchorOf(match[1]!)));
        anchors.set(file, found);
      }
      return found;
    };
    for (const file of await documents()) {
      const text = (await readFile(file, 'utf8')).replace(/```[\s\S]*?```/g, '');
      for (const match of text.matchAll(/\[[^\]]*\]\(([^)\s]+)\)/g)) {
        const href = match[1]!;
        if (/^[a-z]+:/.test(href)) continue;
        const [target, anchor] = href.split('#') as [string, string | undefined];
        const resolved = target === '' ? file : path.normalize(path.join(path.dirname(file), target));
        try {
          await readFile(resolved);
        } catch {
          broken.push(`${file}: ${href} (no file ${resolved})`);
          continue;
        }
        if (anchor && resolved.endsWith('.md') && !(await anchorsOf(resolved)).has(anchor)) broken.push(`${file}: ${href} (no heading #${anchor} in ${resolved})`);
      }
    }
    assert.deepEqual(broken, []);
  });
});
