import { describe, expect, it } from 'vitest';
import { errorFromBody, errorReply } from '../../../lib/server/http-errors';
import {
  LimitExceededError,
  NonFastForwardError,
  RemoteAuthError,
  RemoteNotFoundError,
  RemoteRejectedError,
  RemoteUnavailableError,
} from '../../../lib/errors';

describe('errors on the wire', () => {
  it('maps a typed error to its status and back to the same class, with its data', () => {
    const r = errorReply(new NonFastForwardError('refs/heads/main moved', { ref: 'refs/heads/main' }));
    expect(r.status).toBe(409);
    expect(r.body.error.code).toBe('CORAL_NON_FAST_FORWARD');
    const back = errorFromBody(r.status, JSON.parse(JSON.stringify(r.body)), 'push');
    expect(back).toBeInstanceOf(NonFastForwardError);
    expect(back.message).toBe('push: refs/heads/main moved');
    expect(back.data).toEqual({ ref: 'refs/heads/main' });
    expect(errorReply(new LimitExceededError('too big')).status).toBe(413);
  });

  it('hides what is not a coral error and falls back on the status for unknown bodies', () => {
    const r = errorReply(new Error('secret path /etc/x'));
    expect(r).toEqual({ status: 500, body: { error: { code: 'CORAL_INTERNAL', message: 'internal server error' } } });
    expect(errorFromBody(401, null, 'fetch')).toBeInstanceOf(RemoteAuthError);
    expect(errorFromBody(403, 'nope', 'fetch')).toBeInstanceOf(RemoteAuthError);
    expect(errorFromBody(404, {}, 'fetch')).toBeInstanceOf(RemoteNotFoundError);
    expect(errorFromBody(502, {}, 'fetch')).toBeInstanceOf(RemoteUnavailableError);
    expect(errorFromBody(418, { error: { code: 'CORAL_FROM_THE_FUTURE', message: 'm' } }, 'x')).toBeInstanceOf(
      RemoteRejectedError,
    );
  });
});
