/**
 * Builds the web UI into dist/ui (run by `npm run build`): one bundled, minified script (Preact and
 * the pages), the page, its style sheet and icon. Nothing is fetched at run time from anywhere but
 * the registry itself.
 */
import { copyFile, mkdir, readdir, rm, stat } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';
import { builtAssetsDirectory } from './assets.js';

const sourceDirectory = fileURLToPath(new URL('../../../src/ui/app/', import.meta.url));
const copied = ['index.html', 'styles.css', 'icon.svg'];

async function main(): Promise<void> {
  await rm(builtAssetsDirectory, { recursive: true, force: true });
  await mkdir(builtAssetsDirectory, { recursive: true });
  await build({
    entryPoints: [path.join(sourceDirectory, 'main.tsx')],
    outfile: path.join(builtAssetsDirectory, 'app.js'),
    bundle: true,
    minify: true,
    format: 'esm',
    target: ['es2020', 'chrome100', 'firefox100', 'safari15'],
    jsx: 'automatic',
    jsxImportSource: 'preact',
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const name of copied) await copyFile(path.join(sourceDirectory, name), path.join(builtAssetsDirectory, name));
  const sizes = await Promise.all((await readdir(builtAssetsDirectory)).map(async (name) => `${name} ${((await stat(path.join(builtAssetsDirectory, name))).size / 1024).toFixed(1)} KiB`));
  console.log(`web UI built into ${path.relative(process.cwd(), builtAssetsDirectory) || '.'}: ${sizes.join(', ')}`);
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
