import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Where `npm run build` puts the web UI (dist/ui, beside dist/src). */
export const builtAssetsDirectory = fileURLToPath(new URL('../../ui/', import.meta.url));

const contentTypes: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.map': 'application/json',
};

export interface UiAsset {
  body: Buffer;
  contentType: string;
  etag: string;
}

/**
 * The built web UI, read once into memory (a few hundred KiB): every script, style and icon the
 * pages use is here, so the UI works with no network beyond the registry (offline sites).
 */
export class UiAssets {
  private loaded: Promise<Map<string, UiAsset> | null> | null = null;

  constructor(private readonly directory = builtAssetsDirectory) {}

  /** The asset at a path under /ui/ ('' is the page itself); null when it is not there; throws when the UI was never built. */
  async find(relative: string): Promise<UiAsset | null> {
    this.loaded ??= this.load();
    const assets = await this.loaded;
    if (!assets) throw new Error(`the web UI is not built (no ${path.join(this.directory, 'index.html')}): run npm run build`);
    return assets.get(relative === '' ? 'index.html' : relative) ?? null;
  }

  private async load(): Promise<Map<string, UiAsset> | null> {
    let names: string[];
    try {
      names = await readdir(this.directory);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw error;
    }
    if (!names.includes('index.html')) return null;
    const assets = new Map<string, UiAsset>();
    for (const name of names) {
      const contentType = contentTypes[path.extname(name)];
      if (!contentType) continue;
      const body = await readFile(path.join(this.directory, name));
      assets.set(name, { body, contentType, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"` });
    }
    return assets;
  }
}
