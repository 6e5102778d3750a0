import { findLinkedBlobSizes } from '../metadata/blobs.js';
import { isForeignKeyViolation } from '../metadata/database.js';
import { touchManifest } from '../metadata/gc.js';
import {
  deleteManifest,
  findManifest,
  findManifestByReference,
  findManifestIds,
  findParentDigests,
  type ManifestRow,
} from '../metadata/manifests.js';
import { findRepository, type RepositoryRow } from '../metadata/repositories.js';
import { deleteTag, deleteTagIfUnchanged, moveTag } from '../metadata/tags.js';
import type { NewAuditEvent, RequestOrigin } from '../metadata/audit.js';
import { digestBytes, parseDigest, type Digest } from '../oci/digest.js';
import { RegistryError } from '../oci/errors.js';
import { parseManifest, requireTrueSizes, type Descriptor, type ParsedManifest } from '../oci/manifest.js';
import { isNonDistributableLayer } from '../oci/media-types.js';
import { parseLookupReference, parseManifestReference, type ManifestReference } from '../oci/reference.js';
import { storagePaths } from '../storage/paths.js';
import { putSmallObject } from '../storage/small-objects.js';
import type { RegistryStores } from './context.js';
import { withBlobWrite } from './blob-writes.js';
import { manifestUnknown, negotiateManifest, type ManifestContent } from './manifest-negotiation.js';
import { manifestEvents, writeManifestRows, type ManifestEventRules } from './manifest-rows.js';
import type { ImmutableTags } from './immutable-tags.js';
import type { TagCaches } from './tag-cache.js';
import type { TagLedger } from './tag-ledger.js';

export type { ManifestContent } from './manifest-negotiation.js';

export interface PutManifestResult {
  digest: string;
  /** The subject's digest, for the OCI-Subject header. */
  subject: string | null;
}

export interface ManifestServiceOptions {
  deleteEnabled: boolean;
  /** Which manifest events are recorded beside tag moves (audit.unchanged, audit.manifests). */
  events: ManifestEventRules;
  /** Counts pulls by tag and digest (audit.pulls); absent when pulls are not recorded. */
  pulls?: PullCounter;
  /** Tags that may not move or go (tags.immutable): refused before any byte is written (the ledger checks again). */
  immutable: ImmutableTags;
  /** Every change of tags and every manifest event goes through it. */
  ledger: TagLedger;
  /** Manifests by tag kept in memory; every lookup by tag asks the database when absent. */
  tagCaches?: TagCaches;
}

/** One HEAD or GET of a manifest: by tag (the tag it resolved) or by digest (tag null). */
export interface ManifestRead {
  method: 'GET' | 'HEAD';
  tag: string | null;
  /** The digest answered (after negotiation). */
  digest: string;
}

/** Where manifest reads are seen, to be counted as pulls and written in batches. */
export interface PullCounter {
  read(repository: string, read: ManifestRead, origin: RequestOrigin): void;
}

export interface RestoredTag {
  /** The digest the tag pointed at before (null: it did not exist). */
  from: string | null;
  to: string;
  /** The `restored` event, or null when the tag already pointed there. */
  eventId: number | null;
}

/**
 * Manifests and tags. A push writes the manifest bytes (as a content-addressed blob) to storage
 * first, then its rows through the tag ledger, inside whose transaction the manifest's and the tag's
 * storage links are written before the commit. A delete removes rows first and links after the
 * commit.
 */
export class ManifestService {
  constructor(
    private readonly stores: RegistryStores,
    private readonly options: ManifestServiceOptions,
  ) {}

  async put(repository: string, referenceText: string, payload: Buffer, contentType: string | undefined, origin: RequestOrigin): Promise<PutManifestResult> {
    const reference = parseManifestReference(referenceText);
    const digest = digestBytes(payload, reference.kind === 'digest' ? reference.digest.algorithm : 'sha256');
    if (reference.kind === 'digest' && reference.digest.value !== digest.value) {
      throw new RegistryError('DIGEST_INVALID', {
        message: 'manifest digest does not match the reference',
        detail: { reference: reference.digest.value, actual: digest.value },
      });
    }
    const manifest = parseManifest(payload, contentType);
    const existing = await findRepository(this.stores.metadata, repository);
    // Refused before any byte is written; the transaction checks again on the row it locks (a race).
    if (reference.kind === 'tag' && existing && this.options.immutable.ruleFor(repository, reference.tag)) {
      const current = await findManifestByReference(this.stores.metadata, repository, { tag: reference.tag });
      if (current && current.digest !== digest.value) this.options.immutable.refuse(repository, reference.tag, 'move');
    }
    const blobs = manifest.blobs.filter((blob) => !isNonDistributableLayer(blob.mediaType));
    const blobDigests = blobs.map((blob) => blob.digest);
    const childIds = await this.requireReferences(existing, blobs, manifest.manifests);

    // The manifest's bytes and links, then its rows, under a claim of its digest that garbage collection respects.
    try {
      await withBlobWrite(this.stores, digest.value, () => this.store(repository, reference, digest, payload, manifest, blobDigests, childIds, origin));
    } catch (error) {
      // Race closed: a blob or child checked above was collected before the rows went in. The rows'
      // foreign keys refuse them (on PostgreSQL after waiting for the collection's commit).
      if (isForeignKeyViolation(error)) {
        throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'a blob or manifest the manifest names was removed by garbage collection meanwhile; push it again' });
      }
      throw error;
    }
    return { digest: digest.value, subject: manifest.subject?.digest ?? null };
  }

  private async store(
    repository: string,
    reference: ManifestReference,
    digest: Digest,
    payload: Buffer,
    manifest: ParsedManifest,
    blobDigests: string[],
    childIds: number[],
    origin: RequestOrigin,
  ): Promise<void> {
    const { storage } = this.stores;
    const payloadKey = storagePaths.blobData(digest);
    if ((await storage.stat(payloadKey))?.size !== payload.length) await putSmallObject(storage, payloadKey, payload);

    const tags = reference.kind === 'tag' ? [reference.tag] : [];
    const record = { repository, digest: digest.value, payload, manifest, blobDigests, childIds, tags };
    const eventRules = this.options.events;
    await this.options.ledger.change({ repository, tags }, origin, async (change) => {
      const written = await writeManifestRows(change.transaction, record, change.now);
      change.record(manifestEvents(record, written, eventRules));
      // The links after the rows: a delete of the same manifest or tag is then ordered before or after this change.
      await change.writeManifestLink(digest, manifest.mediaType);
      for (const tag of tags) await change.writeLink(tag, digest.value);
    });
  }

  /**
   * Every blob must be linked to the repository and every child manifest held by it (else
   * MANIFEST_BLOB_UNKNOWN), each of the size its descriptor gives (else MANIFEST_INVALID).
   */
  private async requireReferences(repository: RepositoryRow | undefined, blobs: Descriptor[], children: Descriptor[]): Promise<number[]> {
    const db = this.stores.metadata;
    const linked = repository ? await findLinkedBlobSizes(db, repository.id, blobs.map((blob) => blob.digest)) : new Map<string, number>();
    const missingBlob = blobs.find((blob) => !linked.has(blob.digest));
    if (missingBlob) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { detail: { digest: missingBlob.digest } });
    }
    requireTrueSizes(blobs, linked);
    const childDigests = children.map((child) => child.digest);
    const held = repository ? await findManifestIds(db, repository.id, childDigests) : new Map<string, { id: number; size: number }>();
    const missingChild = childDigests.find((digest) => !held.has(digest));
    if (missingChild) {
      throw new RegistryError('MANIFEST_BLOB_UNKNOWN', { message: 'manifest references a manifest unknown to the repository', detail: { digest: missingChild } });
    }
    requireTrueSizes(children, new Map([...held].map(([digest, row]) => [digest, row.size])));
    return [...held.values()].map((row) => row.id);
  }

  /**
   * The manifest a GET or HEAD answers with, negotiated against the client's Accept list; `read`
   * (the request's method, and its origin, asked for only then) goes to the pull counter when pulls
   * are recorded.
   */
  async get(repository: string, referenceText: string, accepted: Set<string>, read?: { method: 'GET' | 'HEAD'; origin: () => RequestOrigin }): Promise<ManifestContent> {
    const reference = parseLookupReference(referenceText);
    // By digest: an index about to name it, or a pull; recorded before the answer (see touchManifest).
    if (reference.kind === 'digest') await touchManifest(this.stores.metadata, repository, reference.digest.value, this.stores.clock.now());
    const manifest =
      reference.kind === 'tag'
        ? await this.manifestByTag(repository, reference.tag)
        : await findManifestByReference(this.stores.metadata, repository, { digest: reference.digest.value });
    if (!manifest) {
      await this.repositoryOrUnknown(repository);
      throw manifestUnknown(referenceText);
    }
    const content = await negotiateManifest(manifest, referenceText, reference.kind === 'tag', accepted, (digest) =>
      findManifestByReference(this.stores.metadata, repository, { digest }),
    );
    if (read && this.options.pulls) {
      this.options.pulls.read(repository, { method: read.method, tag: reference.kind === 'tag' ? reference.tag : null, digest: content.digest }, read.origin());
    }
    return content;
  }

  private manifestByTag(repository: string, tag: string): Promise<ManifestRow | undefined> {
    const lookup = () => findManifestByReference(this.stores.metadata, repository, { tag });
    return this.options.tagCaches ? this.options.tagCaches.manifests.read(`${repository}\n${tag}`, lookup) : lookup();
  }

  private async repositoryOrUnknown(repository: string): Promise<RepositoryRow> {
    const row = await findRepository(this.stores.metadata, repository);
    if (!row) throw new RegistryError('NAME_UNKNOWN', { detail: { name: repository } });
    return row;
  }

  /** DELETE by tag removes the tag only; by digest removes the manifest and every tag pointing at it. */
  async delete(repository: string, referenceText: string, origin: RequestOrigin): Promise<void> {
    if (!this.options.deleteEnabled) {
      throw new RegistryError('UNSUPPORTED', { message: 'deletes are disabled (storage.delete.enabled is false)' });
    }
    const reference = parseManifestReference(referenceText);
    const repositoryRow = await this.repositoryOrUnknown(repository);
    const { metadata } = this.stores;
    if (reference.kind === 'tag') {
      const tag = reference.tag;
      await this.options.ledger.change({ repository, tags: [tag] }, origin, async (change) => {
        const from = await deleteTag(change.transaction, repositoryRow.id, tag);
        if (from === undefined) throw manifestUnknown(referenceText);
        change.record([{ target: 'tag', repository, tag, upstream: null, action: 'deleted', from, to: null, mediaType: null }]);
        change.removeTagLink(tag);
      });
      return;
    }
    const manifest = await findManifest(metadata, repositoryRow.id, reference.digest.value);
    if (!manifest) throw manifestUnknown(referenceText);
    const parents = await findParentDigests(metadata, manifest.id);
    if (parents.length > 0) {
      throw new RegistryError('CONFLICT', {
        message: `manifest is part of index ${parents[0]}; delete the index first`,
        detail: { parents },
      });
    }
    await this.options.ledger.change({ repository, tags: [] }, origin, async (change) => {
      const tags = await deleteManifest(change.transaction, manifest.id);
      // The tags went with the manifest: each is a deleted tag event.
      const gone = { repository, upstream: null, action: 'deleted', from: manifest.digest, to: null, mediaType: manifest.mediaType, size: manifest.size } as const;
      change.record(tags.map((tag): NewAuditEvent => ({ ...gone, target: 'tag', tag })), 'delete-manifest');
      if (this.options.events.recordPush) change.record([{ ...gone, target: 'manifest', tag: null }]);
      for (const tag of tags) change.removeTagLink(tag);
      change.removeManifestLink(parseDigest(manifest.digest));
    });
  }

  /**
   * Deletes a tag for a retention policy: only if it still points at the digest and push the policy
   * decided on (see deleteTagIfUnchanged), never an immutable one; a `deleted` event, and its
   * storage link removed after the commit. Deletes disabled (storage.delete.enabled) do not stop it: the
   * operator configured the policy. Answers whether it was deleted.
   */
  async deleteTagIfUnchanged(repository: string, tag: string, seen: { digest: string; pushedAt: number }, origin: RequestOrigin, detail: string | null = null): Promise<boolean> {
    if (this.options.immutable.ruleFor(repository, tag)) return false;
    const repositoryRow = await findRepository(this.stores.metadata, repository);
    if (!repositoryRow) return false;
    return this.options.ledger.change({ repository, tags: [tag] }, origin, async (change) => {
      if (!(await deleteTagIfUnchanged(change.transaction, repositoryRow.id, tag, seen))) return false;
      change.record([{ target: 'tag', repository, tag, upstream: null, action: 'deleted', from: seen.digest, to: null, mediaType: null, detail }]);
      change.removeTagLink(tag);
      return true;
    });
  }

  /**
   * Points a tag back at a manifest the repository still holds, with a `restored` event naming the
   * event restored to; like a push, through the tag ledger, with the tag's storage link written
   * before the commit. A manifest collected meanwhile fails the tag row's foreign key: 404.
   */
  async restoreTag(repository: string, tag: string, digest: string, restoredEvent: number, origin: RequestOrigin): Promise<RestoredTag> {
    const repositoryRow = await this.repositoryOrUnknown(repository);
    const gone = () =>
      new RegistryError('MANIFEST_UNKNOWN', {
        message: `${repository}@${digest} is no longer in the repository (deleted, or collected after audit.timemachine): it cannot be restored`,
        detail: { name: repository, digest },
      });
    try {
      return await this.options.ledger.change({ repository, tags: [tag] }, origin, async (change): Promise<RestoredTag> => {
        const manifest = await findManifest(change.transaction, repositoryRow.id, digest);
        if (!manifest) throw gone();
        const { previous } = await moveTag(change.transaction, repositoryRow.id, tag, manifest.id, change.now);
        if (previous === digest) return { from: previous, to: digest, eventId: null };
        change.record([{ target: 'tag', repository, tag, upstream: null, action: 'restored', from: previous, to: digest, mediaType: manifest.mediaType, size: manifest.size, restoredEvent }]);
        await change.writeLink(tag, digest);
        const [eventId] = await change.appendEvents();
        return { from: previous, to: digest, eventId: eventId ?? null };
      });
    } catch (error) {
      if (isForeignKeyViolation(error)) throw gone();
      throw error;
    }
  }
}
