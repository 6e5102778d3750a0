import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { describe, it } from 'node:test';
import { commands } from '../../src/cli/command-line.js';
import { rawTarHeader } from '../helpers/archives.js';
import { freePort } from '../helpers/ports.js';
import { projectRoot, runRegistryCommand, startServerProcess, withTemporaryDirectory } from '../helpers/server-process.js';

const noStack = (stderr: string) => assert.doesNotMatch(stderr, /^\s+at /m, `no stack trace: ${stderr}`);

describe('the command line', () => {
  it('registry --version prints the version of package.json', async () => {
    const { version } = JSON.parse(await readFile(path.join(projectRoot, 'package.json'), 'utf8')) as { version: string };
    const result = await runRegistryCommand(['--version'], {});
    assert.equal(result.code, 0);
    assert.equal(result.stdout, `registry ${version}\n`);
  });

  it('registry --help lists every command, and `registry <command> --help` describes each with its options', async () => {
    const overview = await runRegistryCommand(['--help'], {});
    assert.equal(overview.code, 0);
    for (const spec of commands) {
      assert.match(overview.stdout, new RegExp(`^  ${spec.words.join(' ')} `, 'm'));
      const help = await runRegistryCommand([...spec.words, '--help'], {});
      assert.equal(help.code, 0, help.stderr);
      assert.ok(help.stdout.startsWith(`usage: registry ${spec.words.join(' ')}`), help.stdout);
      for (const option of Object.keys(spec.options)) assert.match(help.stdout, new RegExp(`^  --${option} `, 'm'), `${spec.words.join(' ')} --help names --${option}`);
    }
  });

  it('usage mistakes are usage errors (exit 2, the command\'s usage line), not configuration errors', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['gc', '--fil', 'x'], /Unknown option '--fil'[\s\S]*usage: registry gc /],
      [['mirror', 'sync'], /mirror sync needs --file IMAGES\.yaml[\s\S]*usage: registry mirror sync/],
      [['export', '--out'], /--out <value>' argument missing[\s\S]*usage: registry export/],
      [['import'], /import needs BUNDLE\.tar[\s\S]*usage: registry import/],
      [['tags', 'check', 'a:1', 'b:2'], /unexpected argument "b:2"/],
      [['audit'], /audit needs one of: events, history, verify, export/],
      [['frobnicate'], /unknown command "frobnicate"[\s\S]*registry --help/],
    ];
    for (const [args, message] of cases) {
      const result = await runRegistryCommand(args, {});
      assert.equal(result.code, 2, `${args.join(' ')}: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.doesNotMatch(result.stderr, /configuration error/);
      noStack(result.stderr);
    }
  });

  it('`registry config-keys | head -1` ends quietly when the reader goes away', async () => {
    const child = spawn(process.execPath, ['dist/src/main.js', 'config-keys'], { cwd: projectRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.stdout.once('data', () => child.stdout.destroy());
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(stderr, '');
    assert.equal(code, 0);
  });

  it('a database or a storage that cannot be opened is one line naming its key, the password left out', async () => {
    await withTemporaryDirectory('registry-cli-stores-', async (directory) => {
      const port = await freePort();
      const database = await runRegistryCommand(['serve'], {
        REGISTRY_HTTP_ADDR: '127.0.0.1:0',
        REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage'),
        REGISTRY_DATABASE_URL: `postgres://registry:s3cret@127.0.0.1:${port}/registry`,
      });
      assert.equal(database.code, 1);
      assert.equal(database.stderr, `registry: cannot open the metadata database postgres://registry:…@127.0.0.1:${port}/registry (database.url, REGISTRY_DATABASE_URL): connect ECONNREFUSED 127.0.0.1:${port}\n`);
      const file = path.join(directory, 'a-file');
      await writeFile(file, 'not a directory');
      const storage = await runRegistryCommand(['serve'], { REGISTRY_HTTP_ADDR: '127.0.0.1:0', REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(file, 'storage') });
      assert.equal(storage.code, 1);
      assert.match(storage.stderr, /^registry: cannot open blob storage ".*a-file\/storage" \(storage\.filesystem\.rootdirectory, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY\): ENOTDIR/);
      assert.equal(storage.stderr.split('\n').filter(Boolean).length, 1, storage.stderr);
    });
  });

  it('registry gc shows progress only for the phases it runs: no mirror, no evict bar', async () => {
    await withTemporaryDirectory('registry-gc-cli-', async (directory) => {
      const result = await runRegistryCommand(['gc', '--dry-run'], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: directory });
      assert.equal(result.code, 0, result.stderr);
      assert.doesNotMatch(result.stderr, /evict/, 'no mirror is configured');
      assert.match(result.stdout, /^would collect 0 manifests, 0 blobs/);
    });
  });

  it('a port in use is one line naming http.addr and REGISTRY_HTTP_ADDR, without a stack', async () => {
    await withTemporaryDirectory('registry-cli-', async (directory) => {
      const first = await startServerProcess({ root: path.join(directory, 'a') });
      try {
        const second = await runRegistryCommand(['serve'], { REGISTRY_HTTP_ADDR: `127.0.0.1:${first.port}`, REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'b') });
        assert.equal(second.code, 1);
        assert.equal(second.stderr, `registry: cannot listen on http.addr "127.0.0.1:${first.port}" (REGISTRY_HTTP_ADDR): the port is already in use (another registry, or another program)\n`);
        const debug = await runRegistryCommand(['serve'], {
          REGISTRY_HTTP_ADDR: '127.0.0.1:0',
          REGISTRY_HTTP_DEBUG_ADDR: `127.0.0.1:${first.port}`,
          REGISTRY_HTTP_DEBUG_PROMETHEUS_ENABLED: 'true',
          REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'c'),
        });
        assert.equal(debug.code, 1);
        assert.match(debug.stderr, /^registry: cannot listen on http\.debug\.addr .* \(REGISTRY_HTTP_DEBUG_ADDR\): the port is already in use/);
        noStack(debug.stderr);
      } finally {
        await first.stop();
      }
    });
  });

  it('registry import of an archive that is not one, or is cut short, is one line naming what is wrong, exit 1', async () => {
    await withTemporaryDirectory('registry-cli-import-', async (directory) => {
      const junk = path.join(directory, 'junk.tar');
      await writeFile(junk, Buffer.alloc(4096, 1));
      const env = { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage') };
      const result = await runRegistryCommand(['import', junk, '--repository', 'team/app'], env);
      assert.equal(result.code, 1);
      assert.equal(result.stderr, `registry: ${junk}: not a tar archive (bad header checksum at byte 0)\n`);
      const negative = path.join(directory, 'negative.tar');
      await writeFile(negative, Buffer.concat([rawTarHeader('a', '0', '', Buffer.from('-1000\0')), Buffer.alloc(2048)]));
      const looping = await runRegistryCommand(['import', negative, '--repository', 'team/app'], env);
      assert.equal(looping.code, 1, 'a negative size ends the import at once, it does not loop');
      assert.match(looping.stderr, /^registry: .*negative\.tar: tar header at byte 0: size "-1000" is not an octal number\n$/);
    });
  });
});
