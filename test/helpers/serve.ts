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

/** Starts `coral serve <args> --listen 127.0.0.1:0`; rejects (after at most 30 s) when no URL is printed. */
export function startServe(args: string[], env: Record<string, string> = {}): Promise<ServeProcess> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, [CORAL_BIN, 'serve', ...args, '--listen', '127.0.0.1:0'], {
      env: { ...process.env, ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    const exited = new Promise<number | string>((res) =>
      proc.on('exit', (code, signal) => res(code ?? signal ?? 'unknown')),
    );
    const timer = setTimeout(() => {
      proc.kill('SIGKILL');
      reject(new Error(`coral serve printed no URL within 30 s\n${err}`));
    }, 30_000);
    proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
    proc.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      const m = /listening on (http:\/\/\S+)/.exec(out);
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
      reject(new Error(`coral serve exited (${code}) before listening\n${err}`));
    });
  });
}
