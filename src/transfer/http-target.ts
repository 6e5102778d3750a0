import type { Readable } from 'node:stream';
import type { ImportedTagOutcome } from '../metadata/mirror.js';
import { parseChallenge } from '../auth/challenge.js';
import { systemClock, type Clock } from '../clock.js';
import { RegistryClient, RemoteTokenError, RemoteUnreachableError } from '../remote/registry-client.js';
import { ImportError, type ImportDestination, type ImportTarget } from './import.js';

type Body = Buffer | Readable | undefined;

/** How long the registry may take to answer a request once it is sent (a whole blob's upload first). */
const answerTimeoutMs = 60_000;

type MirrorDestination = Extract<ImportDestination, { kind: 'mirror' }>;

/** The registry's cache-import API for a mirrored repository: `/api/v1/mirror/cache/<repository>/<what>?ns=<upstream>`. */
function cachePath(destination: MirrorDestination, what: string, query: Record<string, string> = {}): string {
  return `/api/v1/mirror/cache/${destination.repository}/${what}?${new URLSearchParams({ ns: destination.upstream, ...query }).toString()}`;
}

/** Who a request acts for: a local repository (push on it), or a mirrored one (the scopes the registry's challenge names). */
function actingFor(destination: ImportDestination): string {
  return destination.kind === 'local' ? destination.repository : `mirror:${destination.upstream}/${destination.repository}`;
}

/**
 * Imports into a running registry over HTTP. Local repositories through the distribution API, as a
 * client would push: HEAD, mount from a repository this import already filled, or upload (POST, one
 * streamed PATCH, PUT), then the manifests. Mirrored images through the registry's cache-import API
 * (pushes into mirrored names are refused). Docker token auth (or Basic) with the given credentials:
 * push on a local repository; for a mirrored one, push on its prefixed name or the mirror-import
 * grant, as the registry's challenge names them.
 */
export class HttpImportTarget implements ImportTarget {
  private readonly remote: RegistryClient;
  /** Where each blob was pushed first, to mount it into other repositories. */
  private readonly pushedTo = new Map<string, string>();

  constructor(
    private readonly baseUrl: string,
    private readonly credentials: { username: string; password: string } | null,
    clock: Clock = systemClock,
  ) {
    this.remote = new RegistryClient({
      baseUrl,
      credentials: credentials ? { kind: 'basic', ...credentials } : null,
      timeoutMs: answerTimeoutMs,
      userAgent: 'oci-registry-import',
      // An upload's Location is the registry's to give; a redirect is not what an import expects.
      redirect: 'manual',
      clock,
    });
  }

  async refusal(destination: ImportDestination): Promise<string | null> {
    if (destination.kind === 'local') return null;
    const probe = await this.send('GET', cachePath(destination, `blobs/sha256:${'0'.repeat(64)}`), actingFor(destination));
    const reply = (await probe.json().catch(() => null)) as { errors?: Array<{ code?: string; message?: string }> } | null;
    const error = reply?.errors?.[0];
    if (probe.status === 404 && error?.code === 'BLOB_UNKNOWN') return null;
    if (probe.status === 404 && error?.code === 'NOT_FOUND') return `${this.baseUrl} has no pull-through mirror configured (mirror.upstreams), so it has no mirror cache to import into`;
    return `${this.baseUrl} answered ${probe.status}${error?.message ? `: ${error.message}` : ''}`;
  }

  async holdsBlob(destination: ImportDestination, digest: string): Promise<boolean> {
    if (destination.kind === 'mirror') {
      const status = await this.send('GET', cachePath(destination, `blobs/${digest}`), actingFor(destination));
      await status.body?.cancel();
      return status.status === 200;
    }
    const head = await this.send('HEAD', `/v2/${destination.repository}/blobs/${digest}`, destination.repository);
    return head.status === 200;
  }

  async useExistingBlob(destination: ImportDestination, digest: string): Promise<boolean> {
    if (await this.holdsBlob(destination, digest)) return true;
    if (destination.kind === 'mirror') return false;
    const repository = destination.repository;
    const from = this.pushedTo.get(digest);
    if (!from || from === repository) return false;
    const mount = await this.send('POST', `/v2/${repository}/blobs/uploads/?mount=${encodeURIComponent(digest)}&from=${encodeURIComponent(from)}`, repository);
    if (mount.status === 201) return true;
    await this.cancelUpload(mount, repository);
    return false;
  }

  async putBlob(destination: ImportDestination, digest: string, size: number, bytes: () => Readable): Promise<void> {
    if (destination.kind === 'mirror') {
      const put = await this.send('PUT', cachePath(destination, `blobs/${digest}`), actingFor(destination), bytes(), {
        'Content-Type': 'application/octet-stream',
        'Content-Length': String(size),
      });
      await this.expect(put, 201, `store ${digest} (${size} bytes) in the mirror cache of ${destination.upstream}/${destination.repository}`);
      return;
    }
    const repository = destination.repository;
    const started = await this.expect(await this.send('POST', `/v2/${repository}/blobs/uploads/`, repository), 202, `start an upload in ${repository}`);
    const location = this.location(started);
    const patched = await this.expect(
      await this.send('PATCH', location, repository, bytes(), { 'Content-Type': 'application/octet-stream' }),
      202,
      `upload ${digest} (${size} bytes) to ${repository}`,
    );
    const next = new URL(this.location(patched));
    next.searchParams.set('digest', digest);
    await this.expect(await this.send('PUT', next.toString(), repository), 201, `finish the upload of ${digest} to ${repository}`);
    if (!this.pushedTo.has(digest)) this.pushedTo.set(digest, repository);
  }

  async putManifest(destination: ImportDestination, reference: string, payload: Buffer, mediaType: string, seenAt: number | undefined): Promise<{ digest: string; tag?: ImportedTagOutcome }> {
    const repository = destination.repository;
    if (destination.kind === 'mirror') {
      const path = cachePath(destination, `manifests/${reference}`, seenAt === undefined ? {} : { seen: new Date(seenAt).toISOString() });
      const response = await this.expect(
        await this.send('PUT', path, actingFor(destination), payload, { 'Content-Type': mediaType }),
        201,
        `put manifest ${reference} in the mirror cache of ${destination.upstream}/${repository}`,
      );
      return (await response.json()) as { digest: string; tag?: ImportedTagOutcome };
    }
    const response = await this.expect(
      await this.send('PUT', `/v2/${repository}/manifests/${reference}`, repository, payload, { 'Content-Type': mediaType }),
      201,
      `put manifest ${reference} in ${repository}`,
    );
    return { digest: response.headers.get('docker-content-digest') ?? '' };
  }

  private location(response: Response): string {
    const location = response.headers.get('location');
    if (!location) throw new ImportError(`${this.baseUrl} answered an upload without a Location`);
    return new URL(location, this.baseUrl).toString();
  }

  private async cancelUpload(response: Response, repository: string): Promise<void> {
    if (response.status === 202) await this.send('DELETE', this.location(response), repository).catch(() => undefined);
  }

  private async expect(response: Response, status: number, what: string): Promise<Response> {
    if (response.status === status) return response;
    const text = await response.text().catch(() => '');
    throw new ImportError(`${this.baseUrl}: could not ${what}: ${response.status} ${text.slice(0, 500)}`);
  }

  /**
   * One request on behalf of a local repository (push on it) or a mirrored one (what the registry's
   * challenge names), through the shared registry client: a 401 is answered with credentials and
   * retried, a streamed body sent once credentials are settled.
   */
  private async send(method: string, pathOrUrl: string, acting: string, body?: Body, headers: Record<string, string> = {}): Promise<Response> {
    const scopes = acting.startsWith('mirror:') ? [] : [`repository:${acting}:pull,push`];
    let response: Response;
    try {
      ({ response } = await this.remote.send(method, pathOrUrl, { scopes, tokenKey: acting, headers, ...(body !== undefined ? { body } : {}) }));
    } catch (error) {
      if (error instanceof RemoteUnreachableError) throw new ImportError(`${this.baseUrl}: ${error.reason}`);
      if (error instanceof RemoteTokenError) throw new ImportError(`${this.baseUrl}: could not get a token: ${error.reason}`);
      throw error;
    }
    if (response.status === 401) {
      const challenge = parseChallenge(response.headers.get('www-authenticate'));
      await response.body?.cancel();
      if (challenge?.scheme === 'basic' && !this.credentials) throw new ImportError(`${this.baseUrl} asks for credentials: pass --creds USER:PASSWORD`);
      if (challenge?.scheme !== 'basic' && (challenge?.scheme !== 'bearer' || !challenge.params.realm)) throw new ImportError(`${this.baseUrl} answered 401 without a challenge we can follow`);
    }
    if (method === 'HEAD') await response.body?.cancel();
    return response;
  }
}
