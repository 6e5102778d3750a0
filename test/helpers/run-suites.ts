/**
 * `npm test` (after the build): every test file of every tier, each in a process of its own
 * (`node --test`), several files of a tier at once where they are independent, then the API files
 * that touch blob storage once more on S3, against one S3 server for the whole rerun (each test
 * registry takes a bucket of its own). Each file's output is printed whole when it ends; at the end,
 * a table of wall time per file, slowest first, and the tests counted. Exit 1 when a file failed.
 *
 * `node dist/test/helpers/run-suites.js [TIER…]` runs only the tiers named (unit, contract, api, e2e, api-s3).
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { readdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { projectRoot } from './server-process.js';
import { startS3Server, type S3TestServer } from './s3-server.js';

interface Tier {
  name: string;
  files: string[];
  /** Files of the tier run at once. */
  concurrency: number;
  env?: Record<string, string>;
}

interface FileResult {
  tier: string;
  file: string;
  seconds: number;
  tests: number;
  failed: number;
  skipped: number;
  code: number | null;
}

const compiled = (tier: string) => path.join(projectRoot, 'dist/test', tier);
const filesOf = (tier: string) =>
  readdirSync(compiled(tier))
    .filter((name) => name.endsWith('.test.js'))
    .sort()
    .map((name) => path.join('dist/test', tier, name));

/**
 * The API files whose outcome can differ with the storage driver: blob and manifest bytes, uploads
 * (multipart on S3), listings of storage (GC, purge, rebuild), the mirror cache, import and export,
 * and names as storage keys. The others work on the database and the HTTP layer, the same on both.
 */
const storageTouching = ['blobs', 'uploads', 'manifests', 'names', 'gc', 'rebuild', 'upload-purge', 'mirror', 'mirror-transfer', 'transfer'];

const cores = Math.max(2, availableParallelism());

function tiers(s3: S3TestServer | null): Tier[] {
  return [
    { name: 'unit', files: filesOf('unit'), concurrency: cores },
    { name: 'contract', files: filesOf('contract'), concurrency: cores },
    { name: 'api', files: filesOf('api'), concurrency: cores },
    // Real clients, daemons and browsers: two at a time keeps a two-core machine busy without starving them.
    { name: 'e2e', files: filesOf('e2e'), concurrency: 2 },
    {
      name: 'api-s3',
      files: storageTouching.map((name) => path.join('dist/test/api', `${name}.test.js`)),
      concurrency: cores,
      env: s3 ? { REGISTRY_TEST_STORAGE: 's3', REGISTRY_TEST_S3_ENDPOINT: s3.endpoint } : {},
    },
  ];
}

/** The counts a TAP report ends with. */
function counted(output: string, name: string): number {
  const match = new RegExp(`^# ${name} (\\d+)$`, 'm').exec(output);
  return match ? Number(match[1]) : 0;
}

function runFile(tier: Tier, file: string): Promise<FileResult> {
  const started = process.hrtime.bigint();
  return new Promise((resolve) => {
    const child = spawn(
      process.execPath,
      ['--import', './dist/test/helpers/temporary.js', '--test', '--test-reporter=tap', '--test-timeout=900000', file],
      { cwd: projectRoot, env: { ...process.env, ...tier.env }, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      process.stdout.write(`\n=== ${tier.name}: ${file} (${seconds.toFixed(1)} s)\n${output}`);
      resolve({ tier: tier.name, file, seconds, tests: counted(output, 'tests'), failed: counted(output, 'fail') + counted(output, 'cancelled'), skipped: counted(output, 'skipped'), code });
    });
  });
}

async function runTier(tier: Tier): Promise<FileResult[]> {
  const results: FileResult[] = [];
  let next = 0;
  const worker = async () => {
    while (next < tier.files.length) results.push(await runFile(tier, tier.files[next++]!));
  };
  await Promise.all(Array.from({ length: Math.min(tier.concurrency, tier.files.length) }, worker));
  return results;
}

function table(results: FileResult[], seconds: number): string {
  const rows = [...results].sort((a, b) => b.seconds - a.seconds);
  const width = Math.max(...rows.map((row) => `${row.tier} ${row.file}`.length), 10);
  const lines = rows.map((row) => `${`${row.tier} ${row.file}`.padEnd(width)}  ${row.seconds.toFixed(1).padStart(7)} s  ${String(row.tests).padStart(4)} tests${row.failed > 0 || row.code !== 0 ? `  FAILED (${row.failed})` : ''}`);
  const total = (tier?: string) => results.filter((row) => tier === undefined || row.tier === tier).reduce((sum, row) => sum + row.tests, 0);
  const byTier = [...new Set(results.map((row) => row.tier))].map((tier) => `${tier} ${total(tier)}`).join(', ');
  return [
    '',
    '=== wall time per test file, slowest first',
    ...lines,
    `tests run: ${total()} (${byTier}); skipped ${results.reduce((sum, row) => sum + row.skipped, 0)}; failed ${results.reduce((sum, row) => sum + row.failed, 0)}; ${results.length} files in ${seconds.toFixed(0)} s`,
    '',
  ].join('\n');
}

async function main(): Promise<number> {
  const wanted = process.argv.slice(2);
  const started = process.hrtime.bigint();
  const s3 = wanted.length === 0 || wanted.includes('api-s3') ? await startS3Server() : null;
  const results: FileResult[] = [];
  try {
    for (const tier of tiers(s3)) {
      if (wanted.length > 0 && !wanted.includes(tier.name)) continue;
      results.push(...(await runTier(tier)));
    }
  } finally {
    await s3?.dispose();
  }
  const summary = table(results, Number(process.hrtime.bigint() - started) / 1e9);
  process.stdout.write(summary);
  // Kept for .ci/run, which prints it again at its very end.
  writeFileSync(path.join(projectRoot, 'dist/test-timings.txt'), summary);
  return results.some((row) => row.code !== 0 || row.failed > 0) ? 1 : 0;
}

process.exit(await main());
