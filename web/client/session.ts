/**
 * The client's session and its REST calls: a given token, or a new anonymous one from
 * `POST /api/session`. One check or creation at a time, so that parallel callers share one session.
 */
import type { SessionResponse } from '../../server/protocol.ts';
import { ChatError } from './errors.ts';
import { request, requestJson, type FetchFn } from './http.ts';

export class ClientSession {
  private pending: Promise<void> | null = null;

  constructor(
    /** The server's origin, no trailing slash. */
    readonly url: string,
    private readonly fetchFn: FetchFn,
    /** The bearer token in use (undefined until one is given or created). */
    public token: string | undefined,
    /** Called with each new session created here. */
    private readonly onNew: (session: SessionResponse) => void,
  ) {}

  /** A token exists; with `validate`, also that the server still knows it (else a new one is made). */
  ensure(validate: boolean): Promise<void> {
    if (this.token && !validate) return Promise.resolve();
    this.pending ??= this.check(validate).finally(() => (this.pending = null));
    return this.pending;
  }

  /** A JSON REST call with the session's token. */
  async rest<T>(path: string, opts: { method?: string; body?: unknown } = {}): Promise<T> {
    await this.ensure(false);
    return requestJson<T>(this.fetchFn, this.url + path, { ...opts, token: this.token });
  }

  private async check(validate: boolean): Promise<void> {
    if (this.token && validate) {
      try {
        await request(this.fetchFn, `${this.url}/api/session`, { token: this.token });
      } catch (err) {
        if (!(err instanceof ChatError && err.code === 'unauthorized')) throw err;
        this.token = undefined;
      }
    }
    if (this.token) return;
    const session = await requestJson<SessionResponse>(this.fetchFn, `${this.url}/api/session`, { method: 'POST' });
    this.token = session.token;
    this.onNew(session);
  }
}
