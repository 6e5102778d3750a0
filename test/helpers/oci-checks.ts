import assert from 'node:assert/strict';
import { testBlob, type TestBlob } from './blobs.js';
import { imageManifest, ociManifestType } from './images.js';
import { errorCode, rawRequest } from './raw-http.js';

/**
 * The push and pull workflows of the OCI distribution-spec conformance suite, over HTTP against
 * running servers: everything is pushed through `pushPort` and read back through `pullPort`
 * (the same server, or another replica sharing its stores).
 */
export async function ociPushPullChecks(pushPort: number, pullPort: number, repository: string): Promise<void> {
  const push = (method: string, path: string, headers: Record<string, string> = {}, body?: Buffer) =>
    rawRequest(pushPort, method, path, { headers: body ? { 'Content-Length': String(body.length), ...headers } : headers, ...(body ? { body } : {}) });
  const pull = (method: string, path: string, headers: Record<string, string> = {}) => rawRequest(pullPort, method, path, { headers });
  const startUpload = async (): Promise<string> => {
    const started = await push('POST', `/v2/${repository}/blobs/uploads/`);
    assert.equal(started.status, 202, 'POST starts an upload');
    assert.ok(started.headers.location, 'the upload has a Location');
    return String(started.headers.location);
  };
  const assertBlob = async (blob: TestBlob, how: string) => {
    const head = await pull('HEAD', `/v2/${repository}/blobs/${blob.digest}`);
    assert.equal(head.status, 200, `${how}: HEAD`);
    assert.equal(head.headers['content-length'], String(blob.bytes.length), `${how}: length`);
    assert.equal(head.headers['docker-content-digest'], blob.digest, `${how}: digest`);
    const get = await pull('GET', `/v2/${repository}/blobs/${blob.digest}`);
    assert.equal(get.status, 200, `${how}: GET`);
    assert.ok(get.body.equals(blob.bytes), `${how}: the same bytes`);
  };

  // Push: POST then PUT with the whole body.
  const postPut = testBlob(70_000);
  const postPutLocation = await startUpload();
  const put = await push('PUT', `${postPutLocation}${postPutLocation.includes('?') ? '&' : '?'}digest=${postPut.digest}`, { 'Content-Type': 'application/octet-stream' }, postPut.bytes);
  assert.equal(put.status, 201, 'POST then PUT');
  assert.equal(put.headers['docker-content-digest'], postPut.digest);
  await assertBlob(postPut, 'POST then PUT');

  // Push: one POST ?digest= with the body.
  const monolithic = testBlob(5_000);
  const single = await push('POST', `/v2/${repository}/blobs/uploads/?digest=${monolithic.digest}`, { 'Content-Type': 'application/octet-stream' }, monolithic.bytes);
  assert.equal(single.status, 201, 'monolithic POST');
  await assertBlob(monolithic, 'monolithic POST');

  // Push: chunked PATCHes, an out-of-order chunk refused with 416, the last chunk with the PUT.
  const chunked = testBlob(3 * 65_536 + 17);
  let location = await startUpload();
  const chunks = [chunked.bytes.subarray(0, 65_536), chunked.bytes.subarray(65_536, 2 * 65_536)];
  let offset = 0;
  for (const chunk of chunks) {
    const patched = await push('PATCH', location, { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${offset + chunk.length - 1}` }, chunk);
    assert.equal(patched.status, 202, `chunk at ${offset}`);
    assert.equal(patched.headers.range, `0-${offset + chunk.length - 1}`);
    location = String(patched.headers.location);
    offset += chunk.length;
  }
  const outOfOrder = await push('PATCH', location, { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset + 10}-${offset + 19}` }, Buffer.alloc(10));
  assert.equal(outOfOrder.status, 416, 'an out-of-order chunk is 416');
  const status = await pull('GET', location);
  assert.equal(status.status, 204, 'the session is visible on the pulling side');
  assert.equal(status.headers.range, `0-${offset - 1}`);
  const last = chunked.bytes.subarray(offset);
  const closed = await push('PUT', `${location}${location.includes('?') ? '&' : '?'}digest=${chunked.digest}`, { 'Content-Type': 'application/octet-stream', 'Content-Range': `${offset}-${chunked.bytes.length - 1}` }, last);
  assert.equal(closed.status, 201, 'chunked upload closed with the last chunk');
  await assertBlob(chunked, 'chunked upload');

  // Push: cross-repository mount.
  const mountTarget = `${repository}-mounted`;
  const mounted = await push('POST', `/v2/${mountTarget}/blobs/uploads/?mount=${chunked.digest}&from=${repository}`);
  assert.equal(mounted.status, 201, 'mount from a repository holding the blob');
  assert.equal((await pull('HEAD', `/v2/${mountTarget}/blobs/${chunked.digest}`)).status, 200);

  // Push: manifest by tag, and by digest.
  const image = imageManifest({ layerSize: 2048 });
  for (const blob of image.blobs) {
    const response = await push('POST', `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, { 'Content-Type': 'application/octet-stream' }, blob.bytes);
    assert.equal(response.status, 201);
  }
  const byTag = await push('PUT', `/v2/${repository}/manifests/v1`, { 'Content-Type': ociManifestType }, image.bytes);
  assert.equal(byTag.status, 201, 'manifest by tag');
  assert.equal(byTag.headers['docker-content-digest'], image.digest);
  const other = imageManifest({ layerSize: 100 });
  for (const blob of other.blobs) await push('POST', `/v2/${repository}/blobs/uploads/?digest=${blob.digest}`, {}, blob.bytes);
  const byDigest = await push('PUT', `/v2/${repository}/manifests/${other.digest}`, { 'Content-Type': ociManifestType }, other.bytes);
  assert.equal(byDigest.status, 201, 'manifest by digest');

  // Pull: manifests by tag and digest, HEAD and GET, tags listed, unknown names 404.
  for (const reference of ['v1', image.digest]) {
    const head = await pull('HEAD', `/v2/${repository}/manifests/${reference}`, { Accept: ociManifestType });
    assert.equal(head.status, 200, `HEAD manifest ${reference}`);
    assert.equal(head.headers['docker-content-digest'], image.digest);
    const get = await pull('GET', `/v2/${repository}/manifests/${reference}`, { Accept: ociManifestType });
    assert.equal(get.status, 200, `GET manifest ${reference}`);
    assert.equal(get.headers['content-type'], ociManifestType);
    assert.ok(get.body.equals(image.bytes), 'the manifest comes back byte for byte');
  }
  assert.ok((await pull('GET', `/v2/${repository}/manifests/${other.digest}`, { Accept: ociManifestType })).body.equals(other.bytes));
  const tags = await pull('GET', `/v2/${repository}/tags/list`);
  assert.deepEqual((tags.json() as { tags: string[] }).tags, ['v1']);
  const missingBlob = await pull('GET', `/v2/${repository}/blobs/${testBlob(10).digest}`);
  assert.equal(missingBlob.status, 404);
  assert.equal(errorCode(missingBlob.json()), 'BLOB_UNKNOWN');
  const missingManifest = await pull('GET', `/v2/${repository}/manifests/nope`, { Accept: ociManifestType });
  assert.equal(missingManifest.status, 404);
  assert.equal(errorCode(missingManifest.json()), 'MANIFEST_UNKNOWN');
}
