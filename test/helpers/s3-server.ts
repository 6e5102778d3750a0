import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createConnection } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { CreateBucketCommand, ListObjectsV2Command, S3Client } from '@aws-sdk/client-s3';
import { S3Driver, type S3DriverOptions } from '../../src/storage/s3.js';
import { freePort } from './ports.js';
import { startS3Proxy, type S3Proxy } from './s3-proxy.js';
import { projectRoot } from './server-process.js';

const s3rverScript = path.join(projectRoot, 'node_modules/s3rver/bin/s3rver.js');
export const s3rverCredentials = { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' };

/** An s3rver process on a random port over a temporary directory, restartable on the same port. */
export interface S3TestServer {
  /** Where clients connect: the write-serialising proxy, unless started `direct`. */
  endpoint: string;
  /** The s3rver process's own port. */
  serverPort: number;
  directory: string;
  /** A client for looking at the bucket directly. */
  client: S3Client;
  createBucket(name: string): Promise<void>;
  /** Every key in a bucket (under a prefix). */
  keys(bucket: string, prefix?: string): Promise<string[]>;
  driverOptions(bucket: string, overrides?: Partial<S3DriverOptions>): S3DriverOptions;
  driver(bucket: string, overrides?: Partial<S3DriverOptions>): S3Driver;
  /** REGISTRY_* variables that point a registry at this server. */
  registryEnv(bucket: string, extra?: Record<string, string>): Record<string, string>;
  /** Ends the process (the data directory stays, so start() serves the same objects again). */
  stop(): Promise<void>;
  start(): Promise<void>;
  /** Stops the process and removes the data directory. */
  dispose(): Promise<void>;
}

async function waitForPort(port: number, child: ChildProcess, output: () => string): Promise<void> {
  const deadline = Date.now() + 20_000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`s3rver exited (${child.exitCode}): ${output()}`);
    const open = await new Promise<boolean>((resolve) => {
      const socket = createConnection({ port, host: '127.0.0.1' });
      socket.once('connect', () => {
        socket.destroy();
        resolve(true);
      });
      socket.once('error', () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`s3rver did not listen on ${port}: ${output()}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/**
 * Starts s3rver. Unless `direct`, clients reach it through a proxy that forwards writes of one key one
 * at a time, as S3's atomic PUTs would leave them (s3rver alone can interleave two PUTs of one key).
 * Benchmarks go direct, measuring the server without the extra hop.
 */
export async function startS3Server(options: { direct?: boolean } = {}): Promise<S3TestServer> {
  const directory = await mkdtemp(path.join(tmpdir(), 's3rver-'));
  const port = await freePort();
  const proxy: S3Proxy | null = options.direct ? null : await startS3Proxy(port, { serializeWrites: true });
  const endpoint = `http://127.0.0.1:${proxy ? proxy.port : port}`;
  let child: ChildProcess | null = null;
  const client = newClient(endpoint);

  const start = async () => {
    // Without the legacy provider, paginated listings fail on Node 20 (s3rver hashes with md5 in a way OpenSSL 3 refuses).
    const process_ = spawn(process.execPath, ['--openssl-legacy-provider', s3rverScript, '-d', directory, '-a', '127.0.0.1', '-p', String(port), '--silent'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    process_.stdout?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    process_.stderr?.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child = process_;
    await waitForPort(port, process_, () => output);
  };
  const stop = async () => {
    const running = child;
    child = null;
    if (!running || running.exitCode !== null) return;
    const exited = new Promise((resolve) => running.once('exit', resolve));
    running.kill('SIGTERM');
    await exited;
  };
  await start();

  return {
    ...clientSide(endpoint, client),
    serverPort: port,
    directory,
    stop,
    start,
    dispose: async () => {
      await stop();
      await proxy?.close();
      client.destroy();
      await rm(directory, { recursive: true, force: true });
    },
  };
}

function newClient(endpoint: string): S3Client {
  return new S3Client({
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: s3rverCredentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}

/** What a test does with an S3 server through its endpoint: buckets, keys, drivers and a registry's settings. */
function clientSide(endpoint: string, client: S3Client): Pick<S3TestServer, 'endpoint' | 'client' | 'createBucket' | 'keys' | 'driverOptions' | 'driver' | 'registryEnv'> {
  const driverOptions = (bucket: string, overrides: Partial<S3DriverOptions> = {}): S3DriverOptions => ({
    bucket,
    rootDirectory: '',
    region: 'us-east-1',
    endpoint,
    forcePathStyle: true,
    credentials: s3rverCredentials,
    partSize: 5 * 1024 * 1024,
    partConcurrency: 3,
    maxAttempts: 3,
    redirectLifetime: null,
    ...overrides,
  });
  return {
    endpoint,
    client,
    createBucket: async (name) => {
      await client.send(new CreateBucketCommand({ Bucket: name }));
    },
    keys: async (bucket, prefix = '') => {
      const keys: string[] = [];
      let token: string | undefined;
      do {
        const page = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: prefix, ...(token ? { ContinuationToken: token } : {}) }));
        for (const entry of page.Contents ?? []) if (entry.Key) keys.push(entry.Key);
        token = page.IsTruncated ? page.NextContinuationToken : undefined;
      } while (token);
      return keys;
    },
    driverOptions,
    driver: (bucket, overrides) => new S3Driver(driverOptions(bucket, overrides)),
    registryEnv: (bucket, extra = {}) => ({
      REGISTRY_STORAGE_S3_BUCKET: bucket,
      REGISTRY_STORAGE_S3_REGIONENDPOINT: endpoint,
      REGISTRY_STORAGE_S3_FORCEPATHSTYLE: 'true',
      REGISTRY_STORAGE_S3_ACCESSKEY: s3rverCredentials.accessKeyId,
      REGISTRY_STORAGE_S3_SECRETKEY: s3rverCredentials.secretAccessKey,
      AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true',
      ...extra,
    }),
  };
}

/**
 * An S3 server some other process runs (the one `npm run test:api-s3` starts for a whole run): what
 * a test can do with it through its endpoint; it cannot be stopped or restarted from here.
 */
export function connectS3Server(endpoint: string): S3TestServer {
  const client = newClient(endpoint);
  const elsewhere = async () => {
    throw new Error(`the S3 server at ${endpoint} belongs to another process`);
  };
  return { ...clientSide(endpoint, client), serverPort: Number(new URL(endpoint).port), directory: '', stop: elsewhere, start: elsewhere, dispose: async () => client.destroy() };
}
