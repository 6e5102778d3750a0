import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { envelopeCode } from '../helpers/push.js';
import { UiAssets } from '../../src/ui/assets.js';
import { createTestRegistry, type TestRegistry } from '../helpers/test-registry.js';

describe('web UI assets at /ui/', () => {
  let registry: TestRegistry;
  let off: TestRegistry;
  before(async () => {
    registry = await createTestRegistry({ ui: true });
    off = await createTestRegistry({ ui: false });
  });
  after(async () => {
    await registry.close();
    await off.close();
  });

  it('serves the page, its script, style and icon from the package, with a CSP that allows nothing from elsewhere', async () => {
    const page = await registry.request.get('/ui/').expect(200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const html = page.text;
    const references = [...html.matchAll(/(?:src|href)="([^"]+)"/g)].map((match) => match[1]!);
    assert.deepEqual(references.sort(), ['app.js', 'icon.svg', 'styles.css'], 'only relative references: nothing outside the registry');
    const csp = String(page.headers['content-security-policy']);
    for (const directive of ["default-src 'none'", "script-src 'self'", "connect-src 'self'", "frame-ancestors 'none'"]) assert.ok(csp.includes(directive), csp);
    assert.equal(page.headers['x-content-type-options'], 'nosniff');
    for (const [file, type] of [
      ['app.js', /^text\/javascript/],
      ['styles.css', /^text\/css/],
      ['icon.svg', /^image\/svg\+xml/],
    ] as const) {
      const asset = await registry.request.get(`/ui/${file}`).expect(200);
      assert.match(String(asset.headers['content-type']), type);
      assert.ok((asset.body as Buffer | string).length > 0 || asset.text.length > 0);
    }
    const script = (await registry.request.get('/ui/app.js').expect(200)).text;
    assert.doesNotMatch(script, /https?:\/\/(?!localhost)[a-z0-9.-]+\.[a-z]{2,}\/[^\s"'`]*\.(js|css|woff2?)/i, 'the script loads nothing from another host');
  });

  it('answers If-None-Match with 304, redirects / and /ui to /ui/, and 404s an unknown file', async () => {
    const first = await registry.request.get('/ui/app.js').expect(200);
    const etag = String(first.headers.etag);
    assert.equal(first.headers['cache-control'], 'no-cache');
    await registry.request.get('/ui/app.js').set('If-None-Match', etag).expect(304);
    assert.equal((await registry.request.get('/').expect(302)).headers.location, '/ui/');
    assert.equal((await registry.request.get('/ui').expect(302)).headers.location, '/ui/');
    assert.equal(envelopeCode(await registry.request.get('/ui/nothing.js').expect(404)), 'NOT_FOUND');
    assert.equal(envelopeCode(await registry.request.get('/ui/../package.json').expect(404)), 'NOT_FOUND');
  });

  it('with ui.enabled false there is no UI and / is not redirected; the API is unchanged', async () => {
    assert.equal(envelopeCode(await off.request.get('/ui/').expect(404)), 'NOT_FOUND');
    assert.equal(envelopeCode(await off.request.get('/ui/app.js').expect(404)), 'NOT_FOUND');
    assert.equal(envelopeCode(await off.request.get('/').expect(404)), 'NOT_FOUND');
    await off.request.get('/v2/').expect(200);
    await off.request.get('/api/v1/repositories').expect(200);
  });
});

describe('web UI assets never built', () => {
  it('says to run npm run build, rather than serving an empty page', async () => {
    await assert.rejects(new UiAssets('/nonexistent/ui/').find(''), /the web UI is not built .*run npm run build/);
  });
});
