import { createHash, randomBytes } from 'node:crypto';
import { createWriteStream } from 'node:fs';
import { mkdir, rename, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { Readable, Transform, type TransformCallback } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { createGzip } from 'node:zlib';

/**
 * Writes OCI image layouts (oci-layout, index.json, blobs/sha256/…) for real clients to copy:
 * gzip'd tar layers made on the fly, a config naming their diff ids, manifests and indexes.
 */

export interface BlobDescriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: { architecture: string; os: string };
}

export interface LayerSpec {
  /** Files in the layer: name and size (content is random). */
  files: Array<{ name: string; size: number }>;
}

class Hasher extends Transform {
  readonly hash = createHash('sha256');
  size = 0;
  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.hash.update(chunk);
    this.size += chunk.length;
    callback(null, chunk);
  }
}

function tarHeader(name: string, size: number): Buffer {
  const header = Buffer.alloc(512);
  const field = (value: string, offset: number, length: number) => header.write(value, offset, length, 'ascii');
  field(name, 0, 100);
  field('0000644\0', 100, 8);
  field('0000000\0', 108, 8);
  field('0000000\0', 116, 8);
  field(`${size.toString(8).padStart(11, '0')}\0`, 124, 12);
  field(`${Math.floor(Date.UTC(2024, 0, 1) / 1000).toString(8).padStart(11, '0')}\0`, 136, 12);
  field('        ', 148, 8);
  field('0', 156, 1);
  field('ustar\0', 257, 6);
  field('00', 263, 2);
  let checksum = 0;
  for (const byte of header) checksum += byte;
  field(`${checksum.toString(8).padStart(6, '0')}\0 `, 148, 8);
  return header;
}

async function* tarStream(files: LayerSpec['files']): AsyncIterable<Buffer> {
  const block = randomBytes(1024 * 1024);
  for (const file of files) {
    yield tarHeader(file.name, file.size);
    let remaining = file.size;
    while (remaining > 0) {
      const piece = remaining >= block.length ? randomBytes(block.length) : randomBytes(remaining);
      remaining -= piece.length;
      yield piece;
    }
    const padding = (512 - (file.size % 512)) % 512;
    if (padding) yield Buffer.alloc(padding);
  }
  yield Buffer.alloc(1024);
}

export class OciLayout {
  private readonly blobsDirectory: string;
  private readonly references: Array<{ descriptor: BlobDescriptor; tag: string }> = [];

  constructor(readonly directory: string) {
    this.blobsDirectory = path.join(directory, 'blobs', 'sha256');
  }

  async addBlob(bytes: Buffer, mediaType: string): Promise<BlobDescriptor> {
    await mkdir(this.blobsDirectory, { recursive: true });
    const hex = createHash('sha256').update(bytes).digest('hex');
    await writeFile(path.join(this.blobsDirectory, hex), bytes);
    return { mediaType, digest: `sha256:${hex}`, size: bytes.length };
  }

  /** A gzip'd tar layer; returns its descriptor and the digest of the uncompressed tar (diff id). */
  async addLayer(spec: LayerSpec): Promise<{ descriptor: BlobDescriptor; diffId: string }> {
    await mkdir(this.blobsDirectory, { recursive: true });
    const temporary = path.join(this.blobsDirectory, `.layer-${randomBytes(6).toString('hex')}`);
    const uncompressed = new Hasher();
    const compressed = new Hasher();
    await pipeline(Readable.from(tarStream(spec.files)), uncompressed, createGzip({ level: 1 }), compressed, createWriteStream(temporary));
    const hex = compressed.hash.digest('hex');
    await rename(temporary, path.join(this.blobsDirectory, hex));
    return {
      descriptor: { mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip', digest: `sha256:${hex}`, size: compressed.size },
      diffId: `sha256:${uncompressed.hash.digest('hex')}`,
    };
  }

  /** An image: layers, a config naming their diff ids, and the manifest. Returns the manifest's descriptor. */
  async addImage(options: { layers: LayerSpec[]; architecture?: string; os?: string }): Promise<BlobDescriptor & { layers: BlobDescriptor[]; config: BlobDescriptor }> {
    const architecture = options.architecture ?? 'amd64';
    const os = options.os ?? 'linux';
    const layers = [];
    for (const spec of options.layers) layers.push(await this.addLayer(spec));
    const config = await this.addBlob(
      Buffer.from(
        JSON.stringify({
          architecture,
          os,
          created: '2024-01-01T00:00:00Z',
          config: { Cmd: ['/bin/true'] },
          rootfs: { type: 'layers', diff_ids: layers.map((layer) => layer.diffId) },
          history: layers.map(() => ({ created: '2024-01-01T00:00:00Z', created_by: 'test layout' })),
        }),
      ),
      'application/vnd.oci.image.config.v1+json',
    );
    const manifest = await this.addBlob(
      Buffer.from(
        JSON.stringify({
          schemaVersion: 2,
          mediaType: 'application/vnd.oci.image.manifest.v1+json',
          config,
          layers: layers.map((layer) => layer.descriptor),
        }),
      ),
      'application/vnd.oci.image.manifest.v1+json',
    );
    return { ...manifest, platform: { architecture, os }, layers: layers.map((layer) => layer.descriptor), config };
  }

  async addIndex(manifests: BlobDescriptor[]): Promise<BlobDescriptor> {
    return this.addBlob(
      Buffer.from(JSON.stringify({ schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json', manifests })),
      'application/vnd.oci.image.index.v1+json',
    );
  }

  /** Names a manifest or index in index.json under a tag, and writes the layout's top files. */
  async tag(descriptor: BlobDescriptor, tag: string): Promise<void> {
    this.references.push({ descriptor, tag });
    await writeFile(path.join(this.directory, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
    await writeFile(
      path.join(this.directory, 'index.json'),
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: this.references.map(({ descriptor: { platform: _platform, ...plain }, tag: name }) => ({
          ...plain,
          annotations: { 'org.opencontainers.image.ref.name': name },
        })),
      }),
    );
  }
}
