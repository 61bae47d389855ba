/**
 * Waiting for another process: one timeout and one notice for every wait of a
 * repository (the index lock, ref locks, writer sessions waiting out gc, gc
 * waiting out writers), so that no command blocks silently or for a different
 * time than the next one.
 *
 * Timeout: env `CORAL_LOCK_TIMEOUT` (seconds), else config `core.lockTimeout`
 * (seconds) of the repository, else 60 s. Notice: once a wait has lasted about
 * a second, one line saying what is waited on goes to the wait reporter; the
 * default reporter writes to stderr when it is a TTY (so scripts and pipes see
 * nothing new). Library users can install their own with `setWaitReporter`.
 *
 * @example
 * const notice = waitNotice(() => `the index lock ${p} (held by pid 42)`, timeoutMs);
 * try { ...poll... notice.tick(); } finally { notice.done(); }
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { invalidParameter } from '../errors';

export const DEFAULT_LOCK_TIMEOUT_SECONDS = 60;
export const LOCK_TIMEOUT_ENV = 'CORAL_LOCK_TIMEOUT';
export const LOCK_TIMEOUT_KEY = 'core.lockTimeout';
/** A wait is announced once it has lasted this long. */
export const WAIT_NOTICE_AFTER_MS = 1000;

function seconds(v: unknown, name: string): number {
  const n = typeof v === 'string' && v.trim() !== '' ? Number(v) : v;
  if (typeof n !== 'number' || !Number.isFinite(n) || n < 0) throw invalidParameter(name, 'number of seconds >= 0', v);
  return Math.round(n * 1000);
}

/**
 * How long (ms) to wait for a lock, session or gc held by another process in
 * the repository whose `.coral` directory is `coralDir`.
 */
export function lockTimeoutMs(coralDir?: string): number {
  const env = process.env[LOCK_TIMEOUT_ENV];
  if (env !== undefined && env !== '') return seconds(env, LOCK_TIMEOUT_ENV);
  if (coralDir) {
    let cfg: unknown;
    try {
      cfg = JSON.parse(fs.readFileSync(path.join(coralDir, 'config'), 'utf8'));
    } catch {
      cfg = null; // missing or unreadable config: Config.load reports it where it matters
    }
    const v = (cfg as { core?: { lockTimeout?: unknown } } | null)?.core?.lockTimeout;
    // An invalid value falls back to the default rather than failing every command
    // (including the `coral config core.lockTimeout <n>` that would fix it).
    if (v !== undefined) {
      try {
        return seconds(v, LOCK_TIMEOUT_KEY);
      } catch {
        /* default below */
      }
    }
  }
  return DEFAULT_LOCK_TIMEOUT_SECONDS * 1000;
}

export type WaitReporter = (message: string) => void;

const ttyReporter: WaitReporter = (message) => {
  if (process.stderr.isTTY) process.stderr.write(`coral: ${message}\n`);
};
let reporter: WaitReporter | null = ttyReporter;

/** Replaces the wait reporter (null: silent); returns the previous one. */
export function setWaitReporter(fn: WaitReporter | null): WaitReporter | null {
  const prev = reporter;
  reporter = fn;
  return prev;
}

/**
 * Tracks one wait. Call `tick()` on each poll: once the wait has lasted
 * WAIT_NOTICE_AFTER_MS, the reporter gets one line, "waiting for <what>; giving
 * up after <n> s (core.lockTimeout, CORAL_LOCK_TIMEOUT)".
 */
export function waitNotice(what: () => string, timeoutMs: number): { tick(): void } {
  const start = Date.now();
  let said = false;
  return {
    tick() {
      if (said || Date.now() - start < WAIT_NOTICE_AFTER_MS || !reporter) return;
      said = true;
      reporter(
        `waiting for ${what()}; giving up after ${Math.round(timeoutMs / 1000)} s (${LOCK_TIMEOUT_KEY}, ${LOCK_TIMEOUT_ENV})`,
      );
    },
  };
}
