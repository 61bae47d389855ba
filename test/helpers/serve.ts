// `coral serve` as a child process for the end-to-end tests: started on a free loopback port, its URL read
// from the line it prints once it listens, stopped by its pid (SIGTERM, or SIGKILL for crash tests).
import { spawn, type ChildProcess } from 'node:child_process';
import { CORAL_BIN } from './cli';

export interface ServeProcess {
  url: string;
  proc: ChildProcess;
  stderr: () => string;
  /** Sends `signal` and resolves the exit code (or the signal name). */
  stop(signal?: NodeJS.Signals): Promise<number | string>;
}

/**
 * Starts `coral <argv>` (a server: `serve`, `ui`, `serve --ui`) and resolves once its stdout matches `url`
 * (the first group is the URL); rejects when it exits first or prints nothing matching within 30 s.
 */
export function startCoralServer(
  argv: string[],
  opts: { url: RegExp; cwd?: string; env?: Record<string, string> },
): Promise<ServeProcess> {
  const what = `coral ${argv[0]}`;
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CORAL_BIN, ...argv], {
      cwd: opts.cwd,
      env: { ...process.env, ...opts.env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const exited = new Promise<number | string>((res) =>
      proc.on('exit', (code, signal) => res(code ?? signal ?? 'unknown')),
    );
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`${what} printed no URL within 30 s\n${err}`));
    }, 30_000);
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = opts.url.exec(out);
      if (!m) return;
      clearTimeout(timer);
      resolve({
        url: m[1],
        proc,
        stderr: () => err,
        stop(signal: NodeJS.Signals = 'SIGTERM') {
          if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
          return exited;
        },
      });
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`${what} exited (${code}) before listening\n${err}${out}`));
    });
  });
}

/** Starts `coral serve <args> --listen 127.0.0.1:0`; rejects (after at most 30 s) when no URL is printed. */
export function startServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  return startCoralServer(['serve', ...args, '--listen', '127.0.0.1:0'], { url: /listening on (http:\/\/\S+)/, env });
}
