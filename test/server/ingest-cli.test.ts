// `coral ingest <url> <file>` (lib/cli/commands/ingest.ts) as a child process against the ingest route on
// loopback: the commit it prints is the branch head, metadata lands in the commit, refusals exit with
// their typed error.
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { commitMetric } from '../../lib/commands/log';
import { initBare } from '../../lib/remote/file';
import { Repository } from '../../lib/repository';
import { cliAsync } from '../ingest/helpers';
import { family, writeModel } from '../remote/helpers';
import { startServer, type TestServer } from './ingest-helpers';

let root = '';
let server: TestServer;
beforeAll(async () => {
  root = fs.mkdtempSync(path.join(os.tmpdir(), 'coral-ingest-cli-'));
  server = await startServer(path.join(root, 'repos'));
});
afterAll(async () => {
  await server?.close();
  fs.rmSync(root, { recursive: true, force: true });
});

describe('coral ingest', () => {
  it('uploads, commits with step and metrics, and prints the commit', async () => {
    const dir = path.join(root, 'repos', 'llama');
    await initBare(dir);
    const file = path.join(root, 'model.safetensors');
    writeModel(file, family(2, 77));
    const url = `${server.url}/llama`;
    const r = await cliAsync(root, [
      'ingest',
      url,
      file,
      '--path',
      'ckpt/model.safetensors',
      '-m',
      'epoch 3',
      '--step',
      '300',
      '--metric',
      'loss=0.42',
      '--json',
    ]);
    expect(r.code, r.stderr).toBe(0);
    const reply = JSON.parse(r.stdout) as { commit: string; duplicate: boolean; path: string };
    expect(reply).toMatchObject({ duplicate: false, path: 'ckpt/model.safetensors' });
    const { repository } = await Repository.clone(dir, path.join(root, 'clone'));
    try {
      const [e] = await repository.log();
      expect(e.id).toBe(reply.commit);
      expect(e.commit.message).toBe('epoch 3\n');
      expect(e.commit.metadata.step).toBe(300);
      expect(commitMetric(e.commit, 'loss')).toBe(0.42);
      expect(
        fs.readFileSync(path.join(repository.worktree, 'ckpt', 'model.safetensors')).equals(fs.readFileSync(file)),
      ).toBe(true);
    } finally {
      await repository.close();
    }
    const text = await cliAsync(root, ['ingest', url, file, '--branch', 'exp']);
    expect(text.code, text.stderr).toBe(0);
    expect(text.stdout).toMatch(
      /^\[exp [0-9a-f]{7,}\] model\.safetensors: \d+ new objects \(\d+ delta\), \d+ deduplicated; /,
    );
    const bad = path.join(root, 'bad.safetensors');
    fs.writeFileSync(bad, 'not a checkpoint');
    const refused = await cliAsync(root, ['ingest', url, bad]);
    expect(refused.code).not.toBe(0);
    expect(refused.stderr).toContain('(CORAL_FORMAT)');
  });
});
