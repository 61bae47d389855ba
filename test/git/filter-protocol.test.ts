// The long-running filter protocol (pkt-line v2) driven directly, with fake file operations:
// handshake, a request read through its final flush, status=error for one file without ending the
// process, delayed smudges collected through list_available_blobs, and a clean exit on EOF.
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { serveFilter, type FilterOps } from '../../lib/git/filter';
import { PktReader, PktWriter } from '../../lib/git/pktline';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-filter-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));
let n = 0;

function fakeOps(): FilterOps & { logs: string[] } {
  const logs: string[] = [];
  return {
    logs,
    log: (m) => logs.push(m),
    scratch: (what) => path.join(dir, `${what}-${n++}`),
    async clean(pathname, spool, sha256) {
      const b = fs.readFileSync(spool);
      if (pathname === 'bad.bin') throw new Error('cannot parse');
      // The server hashes the content as it spools it.
      if (sha256 !== crypto.createHash('sha256').update(b).digest('hex')) throw new Error('wrong sha256');
      return Buffer.from(`cleaned ${pathname} ${b.length}\n`);
    },
    smudge(pathname, blob) {
      return (async function* () {
        if (pathname === 'broken-late.bin') {
          yield Buffer.from('partial');
          throw new Error('sha256 mismatch');
        }
        yield Buffer.from(`smudged:${blob.toString()}`);
      })();
    },
    async smudgeToFile(pathname, blob, dest) {
      if (pathname === 'bad-delayed.bin') throw new Error('missing payload');
      fs.writeFileSync(dest, `delayed:${blob.toString()}`);
    },
  };
}

/** Starts a server on in-memory pipes; returns git's side. */
function start(ops: FilterOps) {
  const toFilter = new PassThrough();
  const fromFilter = new PassThrough();
  const done = serveFilter(toFilter, fromFilter, ops, { parallel: 2 });
  return { w: new PktWriter(toFilter), r: new PktReader(fromFilter), end: () => toFilter.end(), done };
}

async function send(w: PktWriter, lines: string[], content?: Buffer) {
  for (const l of lines) w.text(l);
  w.flush();
  if (content !== undefined) {
    await w.data(content);
    w.flush();
  }
  await w.drain();
}

/** Reads a response: status list, then (on success) content and the trailing status list. */
async function response(r: PktReader) {
  const status = (await r.readText())!;
  if (!status.includes('status=success')) return { status, content: null as Buffer | null, final: [] as string[] };
  const parts: Buffer[] = [];
  await r.readData((b) => {
    parts.push(b);
  });
  const final = (await r.readText())!;
  return { status, content: Buffer.concat(parts), final };
}

describe('filter process protocol', () => {
  it('handshakes, serves clean and smudge, reports one bad file with status=error and carries on, exits on EOF', async () => {
    const ops = fakeOps();
    const g = start(ops);
    await send(g.w, ['git-filter-client', 'version=2']);
    expect(await g.r.readText()).toEqual(['git-filter-server', 'version=2']);
    await send(g.w, ['capability=clean', 'capability=smudge', 'capability=delay']);
    expect(await g.r.readText()).toEqual(['capability=clean', 'capability=smudge', 'capability=delay']);

    // A clean larger than one packet: the content spans many packets.
    const big = Buffer.alloc(300_000, 7);
    await send(g.w, ['command=clean', 'pathname=a.bin'], big);
    let res = await response(g.r);
    expect(res.status).toEqual(['status=success']);
    expect(res.content!.toString()).toBe('cleaned a.bin 300000\n');
    expect(res.final).toEqual([]);

    await send(g.w, ['command=clean', 'pathname=bad.bin'], Buffer.from('xx'));
    res = await response(g.r);
    expect(res.status).toEqual(['status=error']);
    expect(ops.logs.join('\n')).toMatch(/bad\.bin/);

    // A failure after content was sent turns the final status into an error.
    await send(g.w, ['command=smudge', 'pathname=broken-late.bin'], Buffer.from('p'));
    res = await response(g.r);
    expect(res.status).toEqual(['status=success']);
    expect(res.final).toEqual(['status=error']);

    // Still serving.
    await send(g.w, ['command=smudge', 'pathname=b.bin'], Buffer.from('ptr'));
    res = await response(g.r);
    expect(res.content!.toString()).toBe('smudged:ptr');

    g.end();
    await g.done;
  });

  it('a clean whose spool cannot be written is status=error and the next is served; an empty file spools too', async () => {
    const ops = fakeOps();
    const announced: string[] = [];
    ops.willClean = (p) => announced.push(p);
    ops.scratch = (what, pathname) =>
      pathname === 'nospace.bin' ? path.join(dir, 'missing-dir', 'spool') : path.join(dir, `${what}-${n++}`);
    const g = start(ops);
    await send(g.w, ['git-filter-client', 'version=2']);
    await g.r.readText();
    await send(g.w, ['capability=clean', 'capability=smudge']);
    await g.r.readText();
    // The content is still read through its flush: the next request starts on a packet boundary.
    await send(g.w, ['command=clean', 'pathname=nospace.bin'], Buffer.alloc(200_000, 1));
    expect((await response(g.r)).status).toEqual(['status=error']);
    expect(ops.logs.join('\n')).toMatch(/nospace\.bin: clean failed/);
    await send(g.w, ['command=clean', 'pathname=empty.bin'], Buffer.alloc(0));
    const res = await response(g.r);
    expect(res.status).toEqual(['status=success']);
    expect(res.content!.toString()).toBe('cleaned empty.bin 0\n');
    expect(announced).toEqual(['nospace.bin', 'empty.bin']);
    g.end();
    await g.done;
    // No spool left behind (each is removed once its response is sent).
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('clean-'))).toEqual([]);
  });

  it('delays smudges, lists them when ready, and serves them (errors included)', async () => {
    const g = start(fakeOps());
    await send(g.w, ['git-filter-client', 'version=2']);
    await g.r.readText();
    await send(g.w, ['capability=clean', 'capability=smudge', 'capability=delay']);
    await g.r.readText();
    for (const p of ['x.bin', 'y.bin', 'bad-delayed.bin']) {
      await send(g.w, ['command=smudge', `pathname=${p}`, 'can-delay=1'], Buffer.from(p));
      expect(await g.r.readText()).toEqual(['status=delayed']);
    }
    const listed = new Set<string>();
    while (listed.size < 3) {
      await send(g.w, ['command=list_available_blobs']);
      const names = (await g.r.readText())!;
      expect(await g.r.readText()).toEqual(['status=success']);
      for (const l of names) listed.add(l.replace('pathname=', ''));
    }
    expect([...listed].sort()).toEqual(['bad-delayed.bin', 'x.bin', 'y.bin']);
    for (const p of ['x.bin', 'y.bin']) {
      await send(g.w, ['command=smudge', `pathname=${p}`], Buffer.alloc(0));
      const res = await response(g.r);
      expect(res.content!.toString()).toBe(`delayed:${p}`);
    }
    await send(g.w, ['command=smudge', 'pathname=bad-delayed.bin'], Buffer.alloc(0));
    expect((await response(g.r)).status).toEqual(['status=error']);
    // Nothing left: an empty list.
    await send(g.w, ['command=list_available_blobs']);
    expect(await g.r.readText()).toEqual([]);
    expect(await g.r.readText()).toEqual(['status=success']);
    g.end();
    await g.done;
    expect(fs.readdirSync(dir).filter((f) => f.startsWith('smudge'))).toEqual([]);
  });

  it("reads git's requests from a file descriptor through one reusable buffer, content intact", async () => {
    // Everything git would send, written ahead to a file (the server reads fd 0 the same way).
    const chunks: Buffer[] = [];
    const sink = new PassThrough();
    sink.on('data', (c: Buffer) => chunks.push(c));
    const w = new PktWriter(sink);
    const pattern = (n: number, seed: number) => {
      const b = Buffer.allocUnsafe(n);
      for (let i = 0; i < n; i++) b[i] = (Math.imul(i + seed, 2654435761) >>> 24) & 0xff;
      return b;
    };
    const files = new Map([
      ['one.bin', pattern((5 << 20) + 123, 1)],
      ['two.bin', pattern(70_001, 2)],
    ]);
    await send(w, ['git-filter-client', 'version=2']);
    await send(w, ['capability=clean', 'capability=smudge']);
    await send(w, ['command=clean', 'pathname=one.bin'], files.get('one.bin'));
    await send(w, ['command=smudge', 'pathname=s.bin'], Buffer.from('ptr'));
    await send(w, ['command=clean', 'pathname=two.bin'], files.get('two.bin'));
    const input = path.join(dir, 'requests');
    fs.writeFileSync(input, Buffer.concat(chunks));

    const ops = fakeOps();
    const seen = new Map<string, string>();
    const clean = ops.clean.bind(ops);
    ops.clean = async (pathname, spool, sha256) => {
      seen.set(pathname, crypto.createHash('sha256').update(fs.readFileSync(spool)).digest('hex'));
      return clean(pathname, spool, sha256);
    };
    const out = new PassThrough();
    const r = new PktReader(out);
    const fd = fs.openSync(input, 'r');
    try {
      const done = serveFilter(fd, out, ops);
      expect(await r.readText()).toEqual(['git-filter-server', 'version=2']);
      expect(await r.readText()).toEqual(['capability=clean', 'capability=smudge']);
      expect((await response(r)).content!.toString()).toBe(`cleaned one.bin ${(5 << 20) + 123}\n`);
      expect((await response(r)).content!.toString()).toBe('smudged:ptr');
      expect((await response(r)).content!.toString()).toBe('cleaned two.bin 70001\n');
      await done;
    } finally {
      fs.closeSync(fd);
    }
    for (const [name, bytes] of files)
      expect(seen.get(name)).toBe(crypto.createHash('sha256').update(bytes).digest('hex'));
  });

  it('rejects a broken packet length', async () => {
    const toFilter = new PassThrough();
    const done = serveFilter(toFilter, new PassThrough(), fakeOps());
    toFilter.end(Buffer.from('zzzz'));
    await expect(done).rejects.toMatchObject({ code: 'CORAL_GIT_PROTOCOL' });
  });
});
