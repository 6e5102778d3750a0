import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import bcrypt from 'bcryptjs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { OciLayout } from '../helpers/oci-layout.js';
import { projectRoot, runRegistryCommand, startServerProcess, type ServerProcess } from '../helpers/server-process.js';
import { missingClients, run } from '../helpers/tools.js';

const chromiumPath = process.env.REGISTRY_TEST_CHROMIUM ?? '/usr/bin/chromium';
const skip = missingClients('skopeo') ?? (existsSync(chromiumPath) ? undefined : `no Chromium at ${chromiumPath} (apt-get install chromium); browser tests skipped`);
/** Screenshots of every page, kept after the run (CI keeps the directory as an artifact). */
const screenshots = process.env.REGISTRY_TEST_ARTIFACTS ? path.join(process.env.REGISTRY_TEST_ARTIFACTS, 'web-ui') : path.join(projectRoot, 'test-artifacts', 'web-ui');

/** The page's document, as much of it as the checks below read (the tests compile without the DOM's types). */
interface PageDocument {
  querySelectorAll(selector: string): ArrayLike<{ textContent: string | null }>;
}

/** Waits until `selector` matches `count` elements (a function, not a string: the UI's CSP forbids eval). */
function waitForCount(page: Page, selector: string, count: number) {
  return page.waitForFunction(([query, wanted]) => (globalThis as unknown as { document: PageDocument }).document.querySelectorAll(query).length === wanted, [selector, count] as const);
}

const shot = (page: Page, name: string) => page.screenshot({ path: path.join(screenshots, `${name}.png`), fullPage: true });

const passwords = { alice: 'alice-ui-password', bob: 'bob-ui-password', dave: 'dave-ui-password' } as const;
type User = keyof typeof passwords;

/**
 * The people's story: alice and bob push team/app with skopeo (an image, a two-platform index, and
 * prod three times in turn); alice signs in to the web UI, finds the repository, reads the image and
 * the index, opens prod's history and puts the first image back. dave, who may read the audit log but
 * not push, sees the same history without a restore button, and the API refuses him too.
 */
describe('web UI in headless Chromium: browse, read an image, restore a tag from its history', { skip }, () => {
  let directory: string;
  let server: ServerProcess;
  let host: string;
  let browser: Browser;
  const prodDigests: string[] = [];
  const foreignRequests: string[] = [];
  const skopeo = (...args: string[]) => run('skopeo', args, { timeoutMs: 300_000 });
  const push = (user: User, source: string, target: string, all = false) =>
    skopeo('copy', ...(all ? ['--all'] : []), '--dest-tls-verify=false', '--dest-creds', `${user}:${passwords[user]}`, source, `docker://${host}/${target}`);
  const manifestDigest = async (reference: string) =>
    (await skopeo('inspect', '--format', '{{.Digest}}', '--tls-verify=false', '--creds', `alice:${passwords.alice}`, `docker://${host}/${reference}`)).stdout.trim();

  const newPage = async (viewport = { width: 1280, height: 900 }): Promise<Page> => {
    const page = await browser.newPage({ viewport });
    page.on('request', (request) => {
      const url = new URL(request.url());
      if (url.host !== host && url.protocol !== 'data:') foreignRequests.push(request.url());
    });
    return page;
  };
  const signIn = async (page: Page, user: User) => {
    await page.goto(`http://${host}/ui/`);
    await page.getByLabel('User name').fill(user);
    await page.getByLabel('Password').fill(passwords[user]);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByText(user, { exact: true }).waitFor();
  };
  const token = async (user: User, scopes: string[]) => {
    const query = new URLSearchParams({ service: 'registry' });
    for (const scope of scopes) query.append('scope', scope);
    const response = await fetch(`http://${host}/auth/token?${query.toString()}`, { headers: { Authorization: `Basic ${Buffer.from(`${user}:${passwords[user]}`).toString('base64')}` } });
    assert.equal(response.status, 200);
    return ((await response.json()) as { token: string }).token;
  };

  /** An SBOM referring to an image, pushed over the API as an artifact client (oras, cosign) would. */
  const pushSbom = async (subject: string) => {
    const authorization = `Bearer ${await token('alice', ['repository:team/app:pull,push'])}`;
    const upload = async (bytes: Buffer) => {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const response = await fetch(`http://${host}/v2/team/app/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { Authorization: authorization, 'Content-Type': 'application/octet-stream' }, body: bytes });
      assert.equal(response.status, 201);
      return { digest, size: bytes.length };
    };
    const empty = await upload(Buffer.from('{}'));
    const sbom = await upload(Buffer.from(JSON.stringify({ spdxVersion: 'SPDX-2.3', name: 'team/app' })));
    const subjectResponse = await fetch(`http://${host}/v2/team/app/manifests/${subject}`, { method: 'HEAD', headers: { Authorization: authorization, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      artifactType: 'application/spdx+json',
      config: { mediaType: 'application/vnd.oci.empty.v1+json', ...empty },
      layers: [{ mediaType: 'application/spdx+json', ...sbom }],
      subject: { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: subject, size: Number(subjectResponse.headers.get('content-length')) },
    });
    const put = await fetch(`http://${host}/v2/team/app/manifests/sha256:${createHash('sha256').update(manifest).digest('hex')}`, {
      method: 'PUT',
      headers: { Authorization: authorization, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' },
      body: manifest,
    });
    assert.equal(put.status, 201);
  };

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-web-ui-'));
    await mkdir(screenshots, { recursive: true });
    const policy = path.join(directory, 'policy.yaml');
    const hash = (secret: string) => bcrypt.hashSync(secret, 4);
    await writeFile(
      policy,
      [
        'users:',
        `  alice: { password: "${hash(passwords.alice)}", groups: [operators] }`,
        `  bob: { password: "${hash(passwords.bob)}", groups: [developers] }`,
        `  dave: { password: "${hash(passwords.dave)}", groups: [auditors] }`,
        'rules:',
        '  - { groups: [operators], repositories: ["team/**"], actions: ["*"] }',
        '  - { groups: [operators], catalog: true, audit: true, operator: true }',
        '  - { groups: [developers], repositories: ["team/**"], actions: [pull, push] }',
        '  - { groups: [auditors], repositories: ["team/**"], actions: [pull] }',
        '  - { groups: [auditors], catalog: true, audit: true }',
        '',
      ].join('\n'),
    );
    server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: policy } });
    host = `127.0.0.1:${server.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    const images = [];
    for (const [index, name] of ['one', 'two', 'three'].entries()) {
      const image = await layout.addImage({ layers: [{ files: [{ name: `${name}.txt`, size: 40_000 + index * 1000 }] }, { files: [{ name: `${name}-extra.txt`, size: 2000 }] }] });
      await layout.tag(image, name);
      images.push(image);
    }
    const arm = await layout.addImage({ layers: [{ files: [{ name: 'arm.txt', size: 3000 }] }], architecture: 'arm64' });
    await layout.tag(await layout.addIndex([images[0]!, arm]), 'multi');
    await push('alice', `oci:${layout.directory}:one`, 'team/app:v1');
    await push('alice', `oci:${layout.directory}:multi`, 'team/app:multi', true);
    // prod, three times: alice, bob, alice.
    for (const [user, name] of [
      ['alice', 'one'],
      ['bob', 'two'],
      ['alice', 'three'],
    ] as const) {
      await push(user, `oci:${layout.directory}:${name}`, 'team/app:prod');
      prodDigests.push(await manifestDigest('team/app:prod'));
    }
    assert.equal(new Set(prodDigests).size, 3);
    await pushSbom(await manifestDigest('team/app:v1'));
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('alice signs in, finds team/app and its tags, with the pull line and the index’s platforms', async () => {
    const page = await newPage();
    await page.goto(`http://${host}/ui/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await shot(page, '01-sign-in');
    await signIn(page, 'alice');
    const row = page.getByRole('row', { name: /team\/app/ });
    await row.waitFor();
    assert.match(await row.innerText(), /team\/app\s+local\s+3\s+/);
    assert.match(await row.innerText(), /alice/);
    await shot(page, '02-repositories');
    await page.getByRole('link', { name: 'team/app' }).click();
    await page.getByRole('heading', { name: 'team/app' }).waitFor();
    await page.getByRole('row', { name: /multi/ }).waitFor();
    assert.match(await page.getByRole('row', { name: /multi/ }).innerText(), /linux\/amd64, linux\/arm64/);
    assert.match(await page.getByRole('row', { name: /prod/ }).innerText(), new RegExp(prodDigests[2]!.slice(0, 19)));
    assert.match(await page.locator('.pull-lines').innerText(), new RegExp(`docker pull ${host}/team/app:multi`));
    await page.getByLabel('Tags matching').fill('p*');
    await waitForCount(page, 'tbody tr', 1);
    assert.match(await page.locator('tbody').innerText(), /prod/);
    await page.getByLabel('Tags matching').fill('');
    await waitForCount(page, 'tbody tr', 3);
    await shot(page, '03-repository');
    const phone = await newPage({ width: 390, height: 844 });
    await signIn(phone, 'alice');
    await phone.goto(`http://${host}/ui/#/r/team/app/-/tags`);
    await phone.getByRole('row', { name: /multi/ }).waitFor();
    await shot(phone, '03-repository-phone');
    const overflow = await phone.evaluate<number>('document.documentElement.scrollWidth - window.innerWidth');
    assert.ok(overflow <= 0, `the phone-sized page scrolls sideways by ${overflow}px`);
    await phone.close();
    await page.close();
  });

  it('bob, who may push team/** but has no catalog grant, lands on the repositories he may pull, not an error', async () => {
    const page = await newPage();
    await signIn(page, 'bob');
    const row = page.getByRole('row', { name: /team\/app/ });
    await row.waitFor();
    assert.match(await row.innerText(), /team\/app\s+local\s+3\s+/);
    assert.equal(await page.locator('.error').count(), 0, 'no error note');
    await page.close();
  });

  it('alice opens the image (config, layers) and the index (platforms)', async () => {
    const page = await newPage();
    await signIn(page, 'alice');
    await page.goto(`http://${host}/ui/#/r/team/app/-/image/v1`);
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    const layers = page.getByRole('table', { name: 'Layers' });
    await layers.waitFor();
    assert.equal(await layers.locator('tbody tr').count(), 2);
    assert.match(await layers.innerText(), /application\/vnd\.oci\.image\.layer\.v1\.tar/);
    await page.getByText('["/bin/true"]').waitFor();
    assert.match(await page.locator('pre.json').innerText(), new RegExp(`"schemaVersion": 2`));
    const referrers = page.getByRole('table', { name: 'Referrers' });
    await referrers.waitFor();
    assert.match(await referrers.innerText(), /application\/spdx\+json/);
    await shot(page, '04-image');
    await page.goto(`http://${host}/ui/#/r/team/app/-/image/multi`);
    const platforms = page.getByRole('table', { name: 'Platforms' });
    await platforms.waitFor();
    assert.match(await platforms.innerText(), /linux\/amd64/);
    assert.match(await platforms.innerText(), /linux\/arm64/);
    await shot(page, '05-index');
    // A child of the index opens from its digest.
    await platforms.getByRole('link').first().click();
    await page.getByRole('heading', { name: 'Layers' }).waitFor();
    await page.close();
  });

  it('alice reads prod’s history (three pushes by two users) and restores the first digest; the tag moves', async () => {
    const page = await newPage();
    await signIn(page, 'alice');
    await page.goto(`http://${host}/ui/#/r/team/app/-/history/prod`);
    const timeline = page.locator('ol.timeline > li');
    await timeline.first().waitFor();
    assert.equal(await timeline.count(), 3);
    const texts = await timeline.allInnerTexts();
    assert.match(texts[0]!, /alice/);
    assert.match(texts[1]!, /bob/);
    assert.match(texts[2]!, /alice/);
    assert.match(texts[2]!, new RegExp(prodDigests[0]!.slice(0, 19)));
    assert.match(texts[0]!, /now/);
    await shot(page, '06-tag-history');
    await page.getByRole('button', { name: `Restore ${prodDigests[0]!.slice(0, 19)}` }).click();
    await page.getByRole('alertdialog').waitFor();
    await shot(page, '07-restore-confirm');
    await page.getByRole('button', { name: 'Restore', exact: true }).click();
    await page.getByRole('status').filter({ hasText: 'points at' }).waitFor();
    await waitForCount(page, 'ol.timeline > li', 4);
    const now = await timeline.first().innerText();
    assert.match(now, new RegExp(prodDigests[0]!.slice(0, 19)));
    assert.match(now, /restored by alice/);
    await shot(page, '08-tag-restored');
    assert.equal(await manifestDigest('team/app:prod'), prodDigests[0]);
    await page.close();
  });

  it('dave (audit, pull only) sees the history with no restore button, and the API refuses his restore with 403', async () => {
    const page = await newPage();
    await signIn(page, 'dave');
    await page.goto(`http://${host}/ui/#/r/team/app/-/history/prod`);
    await page.locator('ol.timeline > li').first().waitFor();
    assert.equal(await page.locator('ol.timeline > li').count(), 4);
    // The grants are asked once the history is shown; give them their turn before counting buttons.
    await page.waitForLoadState('networkidle');
    assert.equal(await page.getByRole('button', { name: /^Restore/ }).count(), 0);
    await page.goto(`http://${host}/ui/#/r/team/app/-/tags`);
    await page.getByRole('row', { name: /prod/ }).waitFor();
    await page.waitForLoadState('networkidle');
    assert.equal(await page.getByRole('button', { name: /^Delete/ }).count(), 0, 'no delete buttons without the delete grant');
    await shot(page, '09-history-without-grant');
    const daveToken = await token('dave', ['repository:team/app:pull,push', 'registry:audit:*']);
    const refused = await fetch(`http://${host}/api/v1/repositories/team/app/tags/prod/restore`, {
      method: 'POST',
      headers: { Authorization: `Bearer ${daveToken}`, 'Content-Type': 'application/json' },
      body: JSON.stringify({ digest: prodDigests[1] }),
    });
    assert.equal(refused.status, 403);
    assert.equal(await manifestDigest('team/app:prod'), prodDigests[0], 'the refused restore moved nothing');
    await page.close();
  });

  it('operations pages: audit events, a garbage collection dry run and its report, mirror status', async () => {
    // An account made on the command line: its event names the account, not a repository.
    const created = await runRegistryCommand(['accounts', 'create', 'carla', '--password-stdin'], { REGISTRY_STORAGE_FILESYSTEM_ROOTDIRECTORY: path.join(directory, 'storage'), REGISTRY_AUTH_MODE: 'token', REGISTRY_AUTH_POLICY: path.join(directory, 'policy.yaml') }, undefined, 'carla-password-1\n');
    assert.equal(created.code, 0, created.stderr);
    const page = await newPage();
    await signIn(page, 'alice');
    await page.getByRole('link', { name: 'Operations' }).click();
    const events = page.getByRole('table', { name: 'Audit events' });
    await events.waitFor();
    assert.match(await events.innerText(), /restored/);
    assert.match(await events.innerText(), /account carla/);
    await page.getByLabel('actor').fill('bob');
    await page.getByRole('button', { name: 'Search' }).click();
    await page.waitForFunction(() => Array.from((globalThis as unknown as { document: PageDocument }).document.querySelectorAll('tbody tr')).every((row) => row.textContent?.includes('bob')));
    await shot(page, '10-audit-events');
    await page.getByRole('link', { name: 'Garbage collection' }).click();
    await page.getByRole('button', { name: 'Start a dry run' }).click();
    await page.getByRole('heading', { name: /Garbage collection run #\d+/ }).waitFor();
    await page.getByRole('status').filter({ hasText: 'succeeded' }).waitFor({ timeout: 60_000 });
    await shot(page, '11-gc-run');
    await page.getByRole('link', { name: 'Mirror' }).click();
    await page.getByText('mirrors no upstream').waitFor();
    await page.close();
  });

  it('alice deletes a tag after a confirmation that names what stays; the row and the tag are gone', async () => {
    const page = await newPage();
    await signIn(page, 'alice');
    await page.goto(`http://${host}/ui/#/r/team/app/-/tags`);
    await page.getByRole('row', { name: /v1/ }).waitFor();
    assert.equal(await manifestDigest('team/app:v1'), prodDigests[0], 'v1 and prod name one manifest');
    await page.getByRole('button', { name: 'Delete tag v1' }).click();
    const dialog = page.getByRole('alertdialog');
    assert.match(await dialog.innerText(), /still tagged prod/);
    await page.getByRole('button', { name: 'Delete manifest of v1' }).click();
    assert.match(await dialog.innerText(), /every tag on it: v1, prod/);
    await page.getByRole('button', { name: 'Delete tag v1' }).click();
    await shot(page, '12-delete-confirm');
    await dialog.getByRole('button', { name: 'Delete', exact: true }).click();
    await waitForCount(page, 'tbody tr', 2);
    const gone = await fetch(`http://${host}/v2/team/app/manifests/v1`, { headers: { Authorization: `Bearer ${await token('alice', ['repository:team/app:pull'])}`, Accept: 'application/vnd.oci.image.manifest.v1+json' } });
    assert.equal(gone.status, 404);
    assert.equal(await manifestDigest('team/app:prod'), prodDigests[0], 'prod still names the manifest');
    await page.close();
  });

  it('markup pushed in an image (labels, environment, annotations) shows as text and never runs', async () => {
    const authorization = `Bearer ${await token('alice', ['repository:team/app:pull,push'])}`;
    const upload = async (bytes: Buffer) => {
      const digest = `sha256:${createHash('sha256').update(bytes).digest('hex')}`;
      const response = await fetch(`http://${host}/v2/team/app/blobs/uploads/?digest=${digest}`, { method: 'POST', headers: { Authorization: authorization }, body: bytes });
      assert.equal(response.status, 201);
      return { digest, size: bytes.length };
    };
    const payload = '<img src=x onerror="window.__pwned=1">';
    const config = await upload(
      Buffer.from(JSON.stringify({ architecture: 'amd64', os: 'linux', config: { Env: [`GREETING=<script>window.__pwned=2</script>`], Labels: { [`<b>label</b>`]: payload } }, rootfs: { type: 'layers', diff_ids: [] } })),
    );
    const manifest = JSON.stringify({
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
      layers: [],
      annotations: { 'org.opencontainers.image.title': payload },
    });
    const put = await fetch(`http://${host}/v2/team/app/manifests/hostile`, { method: 'PUT', headers: { Authorization: authorization, 'Content-Type': 'application/vnd.oci.image.manifest.v1+json' }, body: manifest });
    assert.equal(put.status, 201);
    const page = await newPage();
    const scriptErrors: string[] = [];
    page.on('pageerror', (error) => scriptErrors.push(error.message));
    await signIn(page, 'alice');
    await page.goto(`http://${host}/ui/#/r/team/app/-/image/hostile`);
    await page.getByText(`<b>label</b>=${payload}`, { exact: true }).waitFor();
    await page.getByText('GREETING=<script>window.__pwned=2</script>', { exact: true }).waitFor();
    assert.ok((await page.getByLabel('Manifest JSON').innerText()).includes(JSON.stringify(payload)), 'the annotation, as JSON text');
    assert.equal(await page.evaluate('window.__pwned === undefined && document.querySelectorAll("img[src=x], main b, main script").length === 0'), true);
    assert.deepEqual(scriptErrors, []);
    await page.close();
    const tokenForDelete = `Bearer ${await token('alice', ['repository:team/app:*'])}`;
    await fetch(`http://${host}/v2/team/app/manifests/hostile`, { method: 'DELETE', headers: { Authorization: tokenForDelete } });
  });

  it('a malformed or crafted link opens "No such page", with no script error and no request it should not make', async () => {
    const page = await newPage();
    const scriptErrors: string[] = [];
    const apiPaths: string[] = [];
    page.on('pageerror', (error) => scriptErrors.push(error.message));
    page.on('request', (request) => apiPaths.push(new URL(request.url()).pathname));
    await signIn(page, 'alice');
    for (const hash of ['#/r/%E0%A4%A/-/tags', '#/r/../../api/v1/gc%3Fdryrun=false%23/-/history/v1', '#/r/Team/App/-/tags', '#/r/team/app/-/image/%3Cscript%3E']) {
      await page.goto(`http://${host}/ui/${hash}`);
      await page.getByText('No such page.').waitFor();
    }
    assert.deepEqual(scriptErrors, []);
    assert.deepEqual(apiPaths.filter((pathname) => pathname.startsWith('/api/v1/gc') || pathname.includes('..')), []);
    await page.close();
  });

  it('signing out forgets the session; nothing was kept in the browser’s storage; every request stayed on the registry', async () => {
    const page = await newPage();
    await signIn(page, 'alice');
    const stored = await page.evaluate('({ local: localStorage.length, session: sessionStorage.length, cookies: document.cookie })');
    assert.deepEqual(stored, { local: 0, session: 0, cookies: '' });
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    await page.reload();
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    const wrong = page.getByLabel('User name');
    await wrong.fill('alice');
    await page.getByLabel('Password').fill('not-the-password');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('alert').waitFor();
    assert.match(await page.getByRole('alert').innerText(), /Wrong user name or password/);
    assert.deepEqual(foreignRequests, [], 'the UI fetched something from outside the registry');
    await page.close();
  });

  it('ui.enabled: false serves no UI', async () => {
    const off = await startServerProcess({ root: path.join(directory, 'storage-off'), env: { REGISTRY_UI_ENABLED: 'false' } });
    try {
      assert.equal((await fetch(`http://127.0.0.1:${off.port}/ui/`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${off.port}/ui/app.js`)).status, 404);
      assert.equal((await fetch(`http://127.0.0.1:${off.port}/v2/`)).status, 200);
    } finally {
      await off.stop();
    }
  });
});

/**
 * An htpasswd site (Distribution's simplest auth), used from the keyboard alone: carol tabs to the
 * form, types, presses Enter, and browses to the image skopeo pushed; a wrong password is refused.
 */
describe('web UI with htpasswd auth, from the keyboard', { skip }, () => {
  let directory: string;
  let server: ServerProcess;
  let host: string;
  let browser: Browser;

  before(async () => {
    directory = await mkdtemp(path.join(tmpdir(), 'registry-web-ui-htpasswd-'));
    await mkdir(screenshots, { recursive: true });
    const htpasswd = path.join(directory, 'htpasswd');
    await writeFile(htpasswd, `carol:${bcrypt.hashSync('carol-ui-password', 4).replace(/^\$2b\$/, '$2y$')}\n`);
    server = await startServerProcess({ root: path.join(directory, 'storage'), env: { REGISTRY_AUTH_MODE: 'htpasswd', REGISTRY_AUTH_HTPASSWD_PATH: htpasswd } });
    host = `127.0.0.1:${server.port}`;
    const layout = new OciLayout(path.join(directory, 'layout'));
    await layout.tag(await layout.addImage({ layers: [{ files: [{ name: 'tool.txt', size: 5000 }] }] }), 'v1');
    await run('skopeo', ['copy', '--dest-tls-verify=false', '--dest-creds', 'carol:carol-ui-password', `oci:${layout.directory}:v1`, `docker://${host}/tools/cli:v1`], { timeoutMs: 300_000 });
    browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  });
  after(async () => {
    await browser?.close();
    await server?.stop();
    if (directory) await rm(directory, { recursive: true, force: true });
  });

  it('carol signs in with Tab, typing and Enter, and opens tools/cli:v1 by keyboard', async () => {
    const page = await browser.newPage({ viewport: { width: 1024, height: 768 } });
    await page.goto(`http://${host}/ui/`);
    await page.getByRole('heading', { name: 'Sign in' }).waitFor();
    // The first Tab reaches the skip link, then the brand; the form's fields follow.
    await page.getByLabel('User name').focus();
    await page.keyboard.type('carol');
    await page.keyboard.press('Tab');
    await page.keyboard.type('wrong');
    await page.keyboard.press('Enter');
    await page.getByRole('alert').waitFor();
    await page.getByLabel('Password').fill('');
    await page.getByLabel('Password').focus();
    await page.keyboard.type('carol-ui-password');
    await page.keyboard.press('Enter');
    const link = page.getByRole('link', { name: 'tools/cli' });
    await link.waitFor();
    await link.focus();
    await page.keyboard.press('Enter');
    const tag = page.getByRole('link', { name: 'v1', exact: true });
    await tag.waitFor();
    await tag.focus();
    await page.keyboard.press('Enter');
    await page.getByRole('table', { name: 'Layers' }).waitFor();
    await shot(page, '13-htpasswd-image');
    const focusedOutline = await page.evaluate<string>("(() => { const link = document.querySelector('main a'); link.focus(); return getComputedStyle(link).outlineStyle; })()");
    assert.notEqual(focusedOutline, 'none', 'a focused link shows where the focus is');
    await page.close();
  });
});
