// Data loading for the pages: one request per dependency change, stale answers dropped, errors kept for display.
import { html } from 'htm/preact';
import { useEffect, useState } from 'preact/hooks';
import { ApiError, AuthRequiredError } from './api';

export type Async<T> = { state: 'loading' } | { state: 'ok'; value: T } | { state: 'error'; error: Error };

export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [s, set] = useState<Async<T>>({ state: 'loading' });
  useEffect(() => {
    let live = true;
    set({ state: 'loading' });
    load().then(
      (value) => live && set({ state: 'ok', value }),
      (error: unknown) =>
        live && set({ state: 'error', error: error instanceof Error ? error : new Error(String(error)) }),
    );
    return () => {
      live = false;
    };
  }, deps);
  return s;
}

/** The loading or error line of a page section (role=status / role=alert, so screen readers announce it). */
export function Pending(props: { s: Async<unknown>; what: string }) {
  const { s, what } = props;
  if (s.state === 'loading') return html`<p role="status" class="muted">Loading ${what}…</p>`;
  if (s.state === 'error') {
    if (s.error instanceof AuthRequiredError) return html`<p role="status" class="muted">Waiting for a token…</p>`;
    const code = s.error instanceof ApiError ? ` (${s.error.code})` : '';
    return html`<p role="alert" class="error">Could not load ${what}: ${s.error.message}${code}</p>`;
  }
  return null;
}
