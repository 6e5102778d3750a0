import type { RegistryServices } from './context.js';
import type { Route } from './route-types.js';
import { apiVersionCheck } from './handlers/base.js';
import { blobHandlers } from './handlers/blobs.js';
import { listingHandlers } from './handlers/listings.js';
import { manifestHandlers } from './handlers/manifests.js';
import { tokenHandlers } from './handlers/token.js';
import { mountSourceAccess, uploadHandlers } from './handlers/uploads.js';
import { adminAccess, auditAccess, catalogAccess } from '../auth/scopes.js';
import { accountHandlers } from './handlers/accounts.js';
import { projectHandlers } from './handlers/projects.js';
import type { TokenService } from '../auth/token-service.js';
import { mirrorHandlers } from './handlers/mirror.js';
import { mirrorCacheHandlers } from './handlers/mirror-cache.js';
import { gcHandlers } from './handlers/gc.js';
import { auditHandlers } from './handlers/audit.js';
import { retentionHandlers } from './handlers/retention.js';
import { healthHandlers } from './handlers/health.js';
import { browsingHandlers } from './handlers/browsing.js';
import { uiHandlers } from './handlers/ui.js';
import type { UiAssets } from '../ui/assets.js';

export type { HttpMethod, Route, RouteAccess, RouteParams } from './route-types.js';

// Names may hold slashes, so the name is everything before the fixed tail of each path.
const paths = {
  base: /^\/v2\/?$/,
  catalog: /^\/v2\/_catalog$/,
  manifest: /^\/v2\/(.+)\/manifests\/([^/]+)$/,
  tags: /^\/v2\/(.+)\/tags\/list$/,
  referrers: /^\/v2\/(.+)\/referrers\/([^/]+)$/,
  blob: /^\/v2\/(.+)\/blobs\/([^/]+)$/,
  uploads: /^\/v2\/(.+)\/blobs\/uploads\/?$/,
  upload: /^\/v2\/(.+)\/blobs\/uploads\/([^/]+)$/,
  token: /^\/auth\/token$/,
  mirrorStatus: /^\/api\/v1\/mirror\/status$/,
  mirrorHistory: /^\/api\/v1\/mirror\/history$/,
  gcRuns: /^\/api\/v1\/gc$/,
  // Group 1 is empty (no repository); group 2 is the run's id.
  gcRun: /^\/api\/v1\/gc\/()([^/]+)$/,
  healthz: /^\/healthz$/,
  readyz: /^\/readyz$/,
  retention: /^\/api\/v1\/retention$/,
  notificationStatus: /^\/api\/v1\/notifications\/status$/,
  accounts: /^\/api\/v1\/accounts$/,
  projects: /^\/api\/v1\/projects$/,
  // Group 1 is empty (no repository); group 2 is the project's name.
  project: /^\/api\/v1\/projects\/()([^/]+)$/,
  projectMembers: /^\/api\/v1\/projects\/()([^/]+)\/members$/,
  // Group 2 is `<project>/members/<account>`.
  projectMember: /^\/api\/v1\/projects\/()([^/]+\/members\/[^/]+)$/,
  me: /^\/api\/v1\/me$/,
  // Group 2 is `<project>/robots` and `<project>/robots/<robot>`.
  projectRobots: /^\/api\/v1\/projects\/()([^/]+\/robots)$/,
  projectRobot: /^\/api\/v1\/projects\/()([^/]+\/robots\/[^/]+)$/,
  // Group 1 is empty (no repository); group 2 is the account's name.
  account: /^\/api\/v1\/accounts\/()([^/]+)$/,
  auditEvents: /^\/api\/v1\/audit\/events$/,
  auditVerify: /^\/api\/v1\/audit\/verify$/,
  // The name ends at `/-/`, which no repository name holds (each of its components starts with a letter or digit).
  tagHistory: /^\/api\/v1\/repositories\/(.+)\/-\/tags\/([^/]+)\/history$/,
  tagRestore: /^\/api\/v1\/repositories\/(.+)\/-\/tags\/([^/]+)\/restore$/,
  tagAt: /^\/api\/v1\/repositories\/(.+)\/-\/tags\/([^/]+)$/,
  tagRows: /^\/api\/v1\/repositories\/(.+)\/-\/tags$/,
  // The first forms, without `/-/`: a name with a `tags` component can make one path mean two things.
  legacyTagHistory: /^\/api\/v1\/repositories\/(.+)\/tags\/([^/]+)\/history$/,
  legacyTagRestore: /^\/api\/v1\/repositories\/(.+)\/tags\/([^/]+)\/restore$/,
  legacyTagAt: /^\/api\/v1\/repositories\/(.+)\/tags\/([^/]+)$/,
  legacyTagRows: /^\/api\/v1\/repositories\/(.+)\/tags$/,
  repositorySummaries: /^\/api\/v1\/repositories$/,
  root: /^\/$/,
  uiRoot: /^\/ui$/,
  // Group 1 is empty (no repository); group 2 is the file, one segment.
  uiAsset: /^\/ui\/()([A-Za-z0-9._-]*)$/,
  mirrorCacheBlob: /^\/api\/v1\/mirror\/cache\/(.+)\/blobs\/([^/]+)$/,
  mirrorCacheManifest: /^\/api\/v1\/mirror\/cache\/(.+)\/manifests\/([^/]+)$/,
} as const;

/** The route table: every endpoint, its method and its handler. */
/** `uiAssets`: the web UI's files, served at /ui/ (ui.enabled); null leaves the UI off. */
export function registryRoutes(services: RegistryServices, tokenService: TokenService | null, uiAssets: UiAssets | null = null): Route[] {
  const blobs = blobHandlers(services);
  const uploads = uploadHandlers(services);
  const manifests = manifestHandlers(services);
  const listings = listingHandlers(services);
  const scoped = true;
  const token = tokenService ? tokenHandlers(tokenService) : null;
  const tokenRoutes: Route[] = token
    ? [
        { name: 'token.get', method: 'GET', pattern: paths.token, scoped: false, access: 'public', handle: token.get },
        { name: 'token.post', method: 'POST', pattern: paths.token, scoped: false, access: 'public', handle: token.post },
      ]
    : [];
  const mirrorApi = services.mirror ? mirrorHandlers(services.mirror) : null;
  const cacheApi = services.mirrorCache ? mirrorCacheHandlers(services.mirrorCache) : null;
  const mirrorRoutes: Route[] = [
    ...(mirrorApi
      ? ([
          { name: 'mirror.status', method: 'GET', pattern: paths.mirrorStatus, scoped: false, access: 'catalog', handle: mirrorApi.status },
          { name: 'mirror.history', method: 'GET', pattern: paths.mirrorHistory, scoped: false, access: 'catalog', handle: mirrorApi.history },
        ] satisfies Route[])
      : []),
    ...(cacheApi
      ? ([
          // Loaders only: the blob status tells whether the registry holds a digest anywhere.
          { name: 'mirror.cache.blob.status', method: 'GET', pattern: paths.mirrorCacheBlob, scoped, access: 'mirror-import', handle: cacheApi.blobStatus },
          { name: 'mirror.cache.blob.put', method: 'PUT', pattern: paths.mirrorCacheBlob, scoped, access: 'mirror-import', handle: cacheApi.putBlob },
          { name: 'mirror.cache.manifest.put', method: 'PUT', pattern: paths.mirrorCacheManifest, scoped, access: 'mirror-import', handle: cacheApi.putManifest },
        ] satisfies Route[])
      : []),
  ];
  const gc = gcHandlers(services.gc);
  const gcRoutes: Route[] = [
    // Reports name digests and repositories across the registry: operators only, dry runs too.
    { name: 'gc.start', method: 'POST', pattern: paths.gcRuns, scoped: false, access: 'operator', handle: gc.start },
    { name: 'gc.list', method: 'GET', pattern: paths.gcRuns, scoped: false, access: 'operator', handle: gc.list },
    { name: 'gc.show', method: 'GET', pattern: paths.gcRun, scoped: false, access: 'operator', handle: gc.show },
  ];
  const audit = auditHandlers(services.audit, services.content);
  const browsing = browsingHandlers(services.browsing, services.content);
  const tagRoutes: Route[] = [
    { name: 'audit.tag.history', method: 'GET', pattern: paths.tagHistory, scoped, access: 'audit', handle: audit.history },
    { name: 'audit.tag.restore', method: 'POST', pattern: paths.tagRestore, scoped, access: 'push', alsoAsk: () => [auditAccess], handle: audit.restore },
    { name: 'audit.tag.at', method: 'GET', pattern: paths.tagAt, scoped, access: 'audit', handle: audit.at },
    { name: 'browse.tags', method: 'GET', pattern: paths.tagRows, scoped, access: 'pull', handle: browsing.tags },
  ];
  const legacyPatterns: Record<string, RegExp> = {
    'audit.tag.history': paths.legacyTagHistory,
    'audit.tag.restore': paths.legacyTagRestore,
    'audit.tag.at': paths.legacyTagAt,
    'browse.tags': paths.legacyTagRows,
  };
  const auditRoutes: Route[] = [
    { name: 'audit.events', method: 'GET', pattern: paths.auditEvents, scoped: false, access: 'audit', handle: audit.events },
    { name: 'audit.verify', method: 'GET', pattern: paths.auditVerify, scoped: false, access: 'audit', handle: audit.verify },
  ];
  const browsingRoutes: Route[] = [
    // Everyone: the catalog grant lists every repository, anything less lists what it may pull.
    { name: 'browse.repositories', method: 'GET', pattern: paths.repositorySummaries, scoped: false, access: 'narrowed', alsoAsk: () => [catalogAccess], handle: browsing.repositories },
    ...tagRoutes,
    ...tagRoutes.map((route): Route => ({ ...route, pattern: legacyPatterns[route.name]!, legacy: true })),
  ];
  const ui = uiAssets ? uiHandlers(uiAssets) : null;
  const uiRoutes: Route[] = ui
    ? [
        { name: 'ui.root', method: 'GET', pattern: paths.root, scoped: false, access: 'public', handle: ui.redirect },
        { name: 'ui.root', method: 'GET', pattern: paths.uiRoot, scoped: false, access: 'public', handle: ui.redirect },
        { name: 'ui.asset', method: 'GET', pattern: paths.uiAsset, scoped: false, access: 'public', handle: ui.asset },
      ]
    : [];
  const accounts = accountHandlers(services.accounts);
  const accountRoutes: Route[] = [
    { name: 'accounts.create', method: 'POST', pattern: paths.accounts, scoped: false, access: 'admin', handle: accounts.create },
    { name: 'accounts.list', method: 'GET', pattern: paths.accounts, scoped: false, access: 'admin', handle: accounts.list },
    { name: 'accounts.show', method: 'GET', pattern: paths.account, scoped: false, access: 'admin', handle: accounts.show },
    // Any signed-in account: its own password; the handler asks for the admin grant for anything else.
    { name: 'accounts.change', method: 'PATCH', pattern: paths.account, scoped: false, access: 'authenticated', alsoAsk: () => [adminAccess], handle: accounts.change },
    { name: 'accounts.delete', method: 'DELETE', pattern: paths.account, scoped: false, access: 'admin', handle: accounts.remove },
  ];
  const projects = projectHandlers(services.projects);
  // The project service says who may: system admins, a project's admins, its members, anyone for a public one.
  const projectRoutes: Route[] = [
    { name: 'projects.list', method: 'GET', pattern: paths.projects, scoped: false, access: 'narrowed', handle: projects.list },
    { name: 'projects.create', method: 'POST', pattern: paths.projects, scoped: false, access: 'authenticated', alsoAsk: () => [adminAccess], handle: projects.create },
    { name: 'projects.show', method: 'GET', pattern: paths.project, scoped: false, access: 'narrowed', handle: projects.show },
    { name: 'projects.change', method: 'PATCH', pattern: paths.project, scoped: false, access: 'authenticated', handle: projects.change },
    { name: 'projects.delete', method: 'DELETE', pattern: paths.project, scoped: false, access: 'authenticated', alsoAsk: () => [adminAccess], handle: projects.remove },
    { name: 'projects.members', method: 'GET', pattern: paths.projectMembers, scoped: false, access: 'authenticated', handle: projects.members },
    { name: 'projects.member.set', method: 'PUT', pattern: paths.projectMember, scoped: false, access: 'authenticated', handle: projects.setMember },
    { name: 'projects.member.delete', method: 'DELETE', pattern: paths.projectMember, scoped: false, access: 'authenticated', handle: projects.removeMember },
    { name: 'projects.robots', method: 'GET', pattern: paths.projectRobots, scoped: false, access: 'authenticated', handle: projects.robots },
    { name: 'projects.robot.create', method: 'POST', pattern: paths.projectRobots, scoped: false, access: 'authenticated', handle: projects.createRobot },
    { name: 'projects.robot.change', method: 'PATCH', pattern: paths.projectRobot, scoped: false, access: 'authenticated', handle: projects.changeRobot },
    { name: 'projects.robot.delete', method: 'DELETE', pattern: paths.projectRobot, scoped: false, access: 'authenticated', handle: projects.deleteRobot },
    { name: 'me', method: 'GET', pattern: paths.me, scoped: false, access: 'authenticated', handle: projects.me },
  ];
  const retention = retentionHandlers(services.retention);
  const health = healthHandlers(services.health);
  return [
    { name: 'health.live', method: 'GET', pattern: paths.healthz, scoped: false, access: 'public', handle: health.live },
    { name: 'health.ready', method: 'GET', pattern: paths.readyz, scoped: false, access: 'public', handle: health.ready },
    // A real run deletes across the registry: operators. A dry run's report is cut to what the caller may pull, unless an operator asks.
    { name: 'retention.run', method: 'POST', pattern: paths.retention, scoped: false, access: (ctx) => (ctx.query.dryrun === 'true' ? 'catalog-or-operator' : 'operator'), handle: retention.run },
    {
      name: 'notifications.status',
      method: 'GET',
      pattern: paths.notificationStatus,
      scoped: false,
      access: 'operator',
      handle: async (ctx) => {
        ctx.body = { endpoints: services.notifications ? await services.notifications.status() : [] };
      },
    },
    ...tokenRoutes,
    ...mirrorRoutes,
    ...gcRoutes,
    ...accountRoutes,
    ...projectRoutes,
    ...auditRoutes,
    ...browsingRoutes,
    ...uiRoutes,
    { name: 'base', method: 'GET', pattern: paths.base, scoped: false, access: 'authenticated', handle: apiVersionCheck },
    { name: 'catalog', method: 'GET', pattern: paths.catalog, scoped: false, access: 'catalog', handle: listings.catalog },
    { name: 'blob.head', method: 'HEAD', pattern: paths.blob, scoped, access: 'pull', handle: blobs.head },
    { name: 'blob.get', method: 'GET', pattern: paths.blob, scoped, access: 'pull', handle: blobs.get },
    { name: 'blob.delete', method: 'DELETE', pattern: paths.blob, scoped, access: 'delete', handle: blobs.delete },
    { name: 'upload.start', method: 'POST', pattern: paths.uploads, scoped, access: 'push', alsoAsk: mountSourceAccess, handle: uploads.start },
    { name: 'upload.status', method: 'GET', pattern: paths.upload, scoped, access: 'pull', handle: uploads.status },
    { name: 'upload.patch', method: 'PATCH', pattern: paths.upload, scoped, access: 'push', handle: uploads.patch },
    { name: 'upload.complete', method: 'PUT', pattern: paths.upload, scoped, access: 'push', handle: uploads.complete },
    { name: 'upload.cancel', method: 'DELETE', pattern: paths.upload, scoped, access: 'delete', handle: uploads.cancel },
    { name: 'manifest.head', method: 'HEAD', pattern: paths.manifest, scoped, access: 'pull', handle: manifests.head },
    { name: 'manifest.get', method: 'GET', pattern: paths.manifest, scoped, access: 'pull', handle: manifests.get },
    { name: 'manifest.put', method: 'PUT', pattern: paths.manifest, scoped, access: 'push', handle: manifests.put },
    { name: 'manifest.delete', method: 'DELETE', pattern: paths.manifest, scoped, access: 'delete', handle: manifests.delete },
    { name: 'tags.list', method: 'GET', pattern: paths.tags, scoped, access: 'pull', handle: listings.tags },
    { name: 'referrers.list', method: 'GET', pattern: paths.referrers, scoped, access: 'pull', handle: listings.referrers },
  ];
}
