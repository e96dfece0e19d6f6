// JSON over fetch with a bearer token; REST error bodies become ChatErrors with the server's code.
import type { ApiErrorBody, ErrorCode } from '../../server/protocol.ts';
import { ChatError } from './errors.ts';

export type FetchFn = (input: string, init?: RequestInit) => Promise<Response>;

const CODE_BY_STATUS: Record<number, ErrorCode> = { 400: 'bad_request', 401: 'unauthorized', 403: 'forbidden', 404: 'not_found', 409: 'conflict', 413: 'too_large', 429: 'busy', 503: 'unavailable' };

export async function request(fetchFn: FetchFn, url: string, { method = 'GET', token, body }: { method?: string; token?: string; body?: unknown } = {}): Promise<Response> {
  const headers: Record<string, string> = {};
  if (token) headers.Authorization = `Bearer ${token}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  let res: Response;
  try {
    res = await fetchFn(url, { method, headers, body: body === undefined ? undefined : JSON.stringify(body), credentials: 'same-origin' });
  } catch (err) {
    throw new ChatError('network', `cannot reach ${url}: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

export async function requestJson<T>(fetchFn: FetchFn, url: string, opts: { method?: string; token?: string; body?: unknown } = {}): Promise<T> {
  const res = await request(fetchFn, url, opts);
  return (res.status === 204 ? undefined : await res.json()) as T;
}

async function errorOf(res: Response): Promise<ChatError> {
  const text = await res.text().catch(() => '');
  let parsed: Partial<ApiErrorBody> | undefined;
  try {
    parsed = JSON.parse(text) as Partial<ApiErrorBody>;
  } catch {
    parsed = undefined;
  }
  const code = parsed?.error?.code ?? CODE_BY_STATUS[res.status] ?? 'internal';
  const message = parsed?.error?.message ?? (text.trim().slice(0, 200) || `HTTP ${res.status} ${res.statusText}`);
  return new ChatError(code, message, res.status);
}
