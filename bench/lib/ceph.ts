/**
 * The single-node Ceph cluster the S3 benches run against (scripts/ceph.sh): started when
 * AWS_ENDPOINT_URL is not set, its endpoint and credentials exported into this process, and
 * stopped again by the bench that started it.
 */
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';

const SCRIPT = path.resolve(__dirname, '..', '..', 'scripts', 'ceph.sh');

/** Starts the cluster unless an endpoint is already set; true when this call started it. */
export function ensureCeph(): boolean {
  if (process.env.AWS_ENDPOINT_URL) return false;
  const r = spawnSync('bash', [SCRIPT, 'start'], { encoding: 'utf8', timeout: 240_000 });
  if (r.status !== 0) throw new Error(`scripts/ceph.sh start failed:\n${r.stderr}`);
  for (const m of r.stdout.matchAll(/^export ([A-Z_]+)=(.*)$/gm)) process.env[m[1]] = m[2];
  return true;
}

/** Stops the cluster ensureCeph started. */
export function stopCeph(): void {
  spawnSync('bash', [SCRIPT, 'stop'], { stdio: 'inherit' });
}
