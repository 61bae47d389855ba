/**
 * The HTTP remote's routes (wire format: lib/remote/http-wire.ts): what `coral clone|fetch|push|pull
 * http://host:port/<name>` talks to. Each route checks its scope (`deps.authorize`), then works on the
 * served repository through the same RemoteRepo a path or S3 remote would use, so refs move by that
 * repository's own compare-and-swap (ref lock files on disk, conditional writes in a bucket) and several
 * servers over one bucket never lose an update.
 *
 * What the server enforces whoever the client is:
 * - a pushed pack is verified object by object before it is published (lib/server/receive-pack.ts);
 * - a meta object is accepted only when what it names is already there (a tree: its objects; a commit:
 *   its tree and parents; a tag: its target), so the repository stays closed under reachability;
 * - a ref moves only to a commit or tag the repository holds.
 */
import { Readable } from 'node:stream';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { Counter } from 'prom-client';
import { LimitExceededError, RemoteRejectedError, InvalidArgumentError } from '../../errors';
import { decodeMeta } from '../../models/meta';
import { metaFromDisk, metaToDisk } from '../../odb/meta-store';
import {
  ATTRS_HEADER,
  MAX_BATCH,
  META_CONTENT_TYPE,
  PACK_CONTENT_TYPE,
  REPO_NAME_RE,
  encodeAttrsHeader,
} from '../../remote/http-wire';
import { treeObjects } from '../../remote/negotiate';
import type { RemoteRepo } from '../../remote/transport';
import { ID_RE } from '../../store/object-store';
import { receivePack } from '../receive-pack';
import type { RouteModule, ServerDeps } from '../types';

/** Largest meta object accepted (its decompressed form is bounded the same way by metaFromDisk). */
const MAX_META_BYTES = 256 << 20;

const nameParam = {
  type: 'object',
  properties: { name: { type: 'string', pattern: REPO_NAME_RE.source } },
  required: ['name'],
} as const;

const idsBody = {
  type: 'object',
  properties: {
    ids: { type: 'array', maxItems: MAX_BATCH, items: { type: 'string', maxLength: 128 } },
  },
  required: ['ids'],
  additionalProperties: false,
} as const;

type Named = FastifyRequest<{ Params: { name: string } }>;

async function missingObjects(repo: RemoteRepo, ids: Iterable<string>): Promise<string[]> {
  let missing: string[] = [];
  for (const id of ids) if (!(await repo.objects.has(id))) missing.push(id);
  if (missing.length) {
    await repo.objects.refresh(); // published by another process (or server) meanwhile
    const again: string[] = [];
    for (const id of missing) if (!(await repo.objects.has(id))) again.push(id);
    missing = again;
  }
  return missing;
}

/** Refuses a meta object whose referents the repository lacks. */
async function checkClosed(repo: RemoteRepo, raw: Uint8Array): Promise<void> {
  let obj;
  try {
    obj = decodeMeta(raw);
  } catch (e) {
    throw new InvalidArgumentError(`the meta object is malformed: ${(e as Error).message}`);
  }
  const refuse = (what: string, ids: string[]) =>
    new RemoteRejectedError(
      `the ${obj.type} names ${what} the repository does not have (${ids.slice(0, 3).join(', ')}${
        ids.length > 3 ? `, … ${ids.length} in all` : ''
      }): send them first`,
      { missing: ids.slice(0, 100) },
    );
  if (obj.type === 'tree') {
    const ids = new Set<string>();
    treeObjects(obj.value, null, ids);
    const missing = await missingObjects(repo, ids);
    if (missing.length) throw refuse('objects', missing);
    return;
  }
  const metas = obj.type === 'commit' ? [obj.value.tree, ...obj.value.parents] : [obj.value.object];
  const missing: string[] = [];
  for (const id of metas) if (!(await repo.meta.has(id))) missing.push(id);
  if (missing.length) throw refuse('meta objects', missing);
}

export const remoteRoutes: RouteModule = (app: FastifyInstance, deps: ServerDeps) => {
  const packs = new Counter({
    name: 'coral_remote_packs_total',
    help: 'Pushed packs by outcome (published, empty, refused)',
    labelNames: ['outcome'],
    registers: [deps.metrics],
  });
  const received = new Counter({
    name: 'coral_remote_objects_received_total',
    help: 'Objects written into published packs (verified on arrival)',
    registers: [deps.metrics],
  });
  // Bodies other routes do not parse: the pack stream stays a stream; a meta object is one buffer.
  app.addContentTypeParser(PACK_CONTENT_TYPE, (_req, payload, done) => done(null, payload));
  app.addContentTypeParser(META_CONTENT_TYPE, { parseAs: 'buffer', bodyLimit: MAX_META_BYTES }, (_req, body, done) =>
    done(null, body),
  );

  const repoFor = async (req: Named, scope: 'read' | 'write'): Promise<RemoteRepo> => {
    await deps.authorize(req, req.params.name, scope);
    return deps.openRepo(req.params.name);
  };

  app.get('/:name/refs', { schema: { params: nameParam } }, async (req: Named) => {
    const repo = await repoFor(req, 'read');
    const [refs, head] = await Promise.all([repo.listRefs(), repo.headBranch()]);
    return { head, refs: [...refs].map(([name, v]) => ({ name, id: v.id, token: v.token })) };
  });

  app.post(
    '/:name/refs',
    {
      schema: {
        params: nameParam,
        body: {
          type: 'object',
          properties: {
            name: { type: 'string', pattern: '^refs/', maxLength: 1024 },
            expected: { type: ['string', 'null'], maxLength: 256 },
            next: { type: ['string', 'null'], pattern: '^[0-9a-f]{64}$' },
          },
          required: ['name', 'expected', 'next'],
          additionalProperties: false,
        },
      },
    },
    async (
      req: FastifyRequest<{
        Params: { name: string };
        Body: { name: string; expected: string | null; next: string | null };
      }>,
    ) => {
      const repo = await repoFor(req, 'write');
      const { name, expected, next } = req.body;
      if (next !== null && !(await repo.meta.has(next)))
        throw new RemoteRejectedError(`refusing to point ${name} at ${next}: the repository does not have it`, {
          ref: name,
          id: next,
        });
      await repo.updateRef(name, expected, next);
      return { ok: true };
    },
  );

  app.post('/:name/init', { schema: { params: nameParam } }, async (req: Named) => {
    await deps.authorize(req, req.params.name, 'write');
    await deps.openRepo(req.params.name, { create: true });
    return { ok: true };
  });

  app.post('/:name/meta/has', { schema: { params: nameParam, body: idsBody } }, async (req) => {
    const repo = await repoFor(req as Named, 'read');
    const { ids } = req.body as { ids: string[] };
    return {
      have: await Promise.all(
        ids.map((id) => (/^[0-9a-f]{64}$/.test(id) ? repo.meta.has(id) : Promise.resolve(false))),
      ),
    };
  });

  app.get(
    '/:name/meta/:id',
    {
      schema: {
        params: {
          type: 'object',
          properties: { name: nameParam.properties.name, id: { type: 'string', pattern: '^[0-9a-f]{64}$' } },
          required: ['name', 'id'],
        },
      },
    },
    async (req: FastifyRequest<{ Params: { name: string; id: string } }>, reply: FastifyReply) => {
      const repo = await repoFor(req, 'read');
      const raw = await repo.meta.get(req.params.id);
      return reply.type(META_CONTENT_TYPE).send(metaToDisk(raw));
    },
  );

  app.put('/:name/meta', { schema: { params: nameParam } }, async (req) => {
    const repo = await repoFor(req as Named, 'write');
    if (!Buffer.isBuffer(req.body))
      throw new InvalidArgumentError(`a meta object is sent as ${META_CONTENT_TYPE}`, {
        type: req.headers['content-type'],
      });
    const raw = metaFromDisk(req.body);
    if (!raw) throw new InvalidArgumentError('the meta object does not decode');
    await checkClosed(repo, raw);
    return { id: await repo.meta.put(raw) };
  });

  app.post('/:name/objects/stat', { schema: { params: nameParam, body: idsBody } }, async (req) => {
    const repo = await repoFor(req as Named, 'read');
    const { ids } = req.body as { ids: string[] };
    const valid = ids.filter((id) => ID_RE.test(id));
    const missing = new Set(await missingObjects(repo, valid));
    const attrs = await Promise.all(
      ids.map((id) => (ID_RE.test(id) && !missing.has(id) ? repo.objects.stat(id) : Promise.resolve(null))),
    );
    return { attrs };
  });

  app.get(
    '/:name/objects/:id',
    {
      schema: {
        params: {
          type: 'object',
          properties: { name: nameParam.properties.name, id: { type: 'string', pattern: ID_RE.source } },
          required: ['name', 'id'],
        },
      },
    },
    async (req: FastifyRequest<{ Params: { name: string; id: string } }>, reply: FastifyReply) => {
      const repo = await repoFor(req, 'read');
      const { bytes, attrs } = await repo.objects.get(req.params.id);
      return reply
        .type('application/octet-stream')
        .header(ATTRS_HEADER, encodeAttrsHeader(attrs))
        .send(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    },
  );

  app.get('/:name/objects', { schema: { params: nameParam } }, async (req: Named, reply: FastifyReply) => {
    const repo = await repoFor(req, 'read');
    async function* lines() {
      for await (const a of repo.objects.list()) yield JSON.stringify(a) + '\n';
    }
    return reply.type('application/x-ndjson').send(Readable.from(lines()));
  });

  app.post('/:name/packs', { schema: { params: nameParam } }, async (req) => {
    const repo = await repoFor(req as Named, 'write');
    const body = req.body as Readable | undefined;
    if (!body || typeof body.pipe !== 'function')
      throw new InvalidArgumentError(`a pack is sent as ${PACK_CONTENT_TYPE}`, { type: req.headers['content-type'] });
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > deps.limits.maxUploadBytes)
      throw new LimitExceededError(
        `the pack is larger than this server accepts (serve.maxUploadBytes = ${deps.limits.maxUploadBytes})`,
      );
    let r;
    try {
      r = await receivePack(body, repo.objects, {
        maxBytes: deps.limits.maxUploadBytes,
        maxObjectBytes: deps.limits.maxTensorBytes + (1 << 20),
        tmpDir: deps.tmpDir,
        signal: deps.shutdown,
      });
    } catch (e) {
      packs.inc({ outcome: 'refused' });
      throw e;
    }
    packs.inc({ outcome: r.pack ? 'published' : 'empty' });
    received.inc(r.objects);
    return { pack: r.pack, objects: r.objects, bytes: r.bytes };
  });
};
