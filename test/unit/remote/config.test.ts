// Remote configuration and URL handling: transportOf, clone's default directory, remote names,
// `remote add/remove` (which also drops tracking refs and upstreams).
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { describe, expect, it } from 'vitest';
import { cloneDirName } from '../../../lib/commands/clone';
import { AlreadyExistsError, InvalidArgumentError, RefNotFoundError } from '../../../lib/errors';
import { Repository } from '../../../lib/repository';
import { checkRemoteName, setUpstream, trackingRef, upstreamOf } from '../../../lib/remote/config';
import { transportOf } from '../../../lib/remote/open';

describe('remote URLs and names', () => {
  it('maps URLs to transports', () => {
    expect(transportOf('/srv/m.coral')).toBe('file');
    expect(transportOf('../m')).toBe('file');
    expect(transportOf('C:\\models\\m')).toBe('file');
    expect(transportOf('file:///srv/m')).toBe('file');
    expect(transportOf('s3://bucket/prefix')).toBe('s3');
    expect(transportOf('HTTPS://host/m')).toBe('http');
    expect(() => transportOf('ftp://host/m')).toThrow(InvalidArgumentError);
    expect(() => transportOf('')).toThrow(InvalidArgumentError);
  });

  it('derives the clone directory as git does', () => {
    expect(cloneDirName('/srv/models/llama.coral')).toBe('llama');
    expect(cloneDirName('/srv/models/llama/')).toBe('llama');
    expect(cloneDirName('file:///srv/x.coral')).toBe('x');
    expect(cloneDirName('s3://bucket/models/gpt')).toBe('gpt');
    expect(() => cloneDirName('s3://bucket')).toThrow(InvalidArgumentError);
  });

  it('checks remote names and names tracking refs', () => {
    expect(checkRemoteName('origin')).toBe('origin');
    for (const bad of ['', '-x', 'a.b', 'a/b', '__proto__x y']) expect(() => checkRemoteName(bad)).toThrow();
    expect(trackingRef('origin', 'refs/heads/team/exp')).toBe('refs/remotes/origin/team/exp');
  });

  it('remote add / remove, with tracking refs and upstreams', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-remote-config-'));
    try {
      const repo = await Repository.init(dir);
      const r = await repo.remoteAdd('origin', '/srv/m.coral', { endpoint: 'http://127.0.0.1:7480' });
      expect(r).toEqual({
        name: 'origin',
        url: '/srv/m.coral',
        endpoint: 'http://127.0.0.1:7480',
        promisor: false,
        filter: [],
      });
      await expect(repo.remoteAdd('origin', '/x')).rejects.toBeInstanceOf(AlreadyExistsError);
      await expect(repo.remoteAdd('o2', '/x', { endpoint: 'ftp://x' })).rejects.toBeInstanceOf(InvalidArgumentError);
      await repo.remoteAdd('backup', 's3://b/p');
      expect((await repo.remotes()).map((x) => x.name)).toEqual(['backup', 'origin']);
      const id = 'a'.repeat(64);
      await repo.refs.updateRef('refs/remotes/origin/main', id, { message: 'test' });
      await repo.config.set('branch.main', { remote: 'origin', merge: 'refs/heads/main' });
      expect(upstreamOf(repo.config, 'main')).toEqual({ remote: 'origin', merge: 'refs/heads/main' });
      await setUpstream(repo.config, 'team/exp', { remote: 'origin', merge: 'refs/heads/team/exp' });
      expect(upstreamOf(repo.config, 'team/exp')).toEqual({ remote: 'origin', merge: 'refs/heads/team/exp' });
      await repo.remoteRemove('origin');
      expect(upstreamOf(repo.config, 'team/exp')).toBeNull();
      expect(await repo.refs.readRef('refs/remotes/origin/main')).toBeNull();
      expect(upstreamOf(repo.config, 'main')).toBeNull();
      expect((await repo.remotes()).map((x) => x.name)).toEqual(['backup']);
      await expect(repo.remoteRemove('origin')).rejects.toBeInstanceOf(RefNotFoundError);
      await expect(repo.fetch('nowhere')).rejects.toBeInstanceOf(RefNotFoundError);
      await repo.close();
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
