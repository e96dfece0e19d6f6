// The one error class of the client: the server's stable codes plus the client's own.
import type { ErrorCode } from '../../server/protocol.ts';

/** Server codes, plus `disconnected` (the socket dropped mid-request) and `network` (no answer at all). */
export type ClientErrorCode = ErrorCode | 'disconnected' | 'network';

export class ChatError extends Error {
  override readonly name = 'ChatError';
  constructor(
    readonly code: ClientErrorCode,
    message: string,
    /** The HTTP status of a REST error, when there was one. */
    readonly status?: number,
  ) {
    super(message);
  }
}

/** What went wrong, in words for people rather than programs. */
export function plainWords(err: unknown): string {
  if (!(err instanceof ChatError)) return `Something went wrong: ${err instanceof Error ? err.message : String(err)}`;
  switch (err.code) {
    case 'busy':
      return 'The model is busy with other conversations. Please try again in a moment.';
    case 'rate_limited':
      return `You are sending requests faster than this server allows. Wait a little and try again. (${err.message})`;
    case 'too_large':
      return `That message is too long for this server. (${err.message})`;
    case 'unavailable':
      return 'The server is not ready (it may be starting, shutting down or loading a model). Try again shortly.';
    case 'disconnected':
      return 'The connection to the server was lost, so the reply stopped. It will reconnect by itself.';
    case 'network':
      return 'The server cannot be reached right now. Check that it is running; this page keeps trying.';
    case 'unauthorized':
      return 'Your session is no longer valid. Reload the page to start a new one.';
    case 'forbidden':
      return 'That conversation belongs to another session.';
    case 'not_found':
      return `That no longer exists. (${err.message})`;
    case 'internal':
      return 'The server hit an internal error. Please try again.';
    default:
      return `The server refused the request: ${err.message}`;
  }
}
