/**
 * Which browser origins the server trusts: its public origin (PUBLIC_ORIGIN, or else the origins it
 * is reached at as listened on: http://HOST:PORT, and localhost / 127.0.0.1 / [::1] for a loopback
 * HOST) and ALLOWED_ORIGINS. A browser's Origin is compared against them, not against the request's
 * Host header, which a DNS-rebinding page controls. Only when HOST is a wildcard (0.0.0.0, ::) and
 * PUBLIC_ORIGIN is unset is the server's own origin unknown: then the Host header is what there is.
 */
import type { ServerConfig } from './config.ts';

const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
const WILDCARD = new Set(['0.0.0.0', '::']);

export class Origins {
  private readonly trusted: Set<string>;
  /** No known public origin (wildcard HOST, no PUBLIC_ORIGIN): fall back to the Host header. */
  private byHost = false;

  constructor(private readonly config: Pick<ServerConfig, 'host' | 'publicOrigin' | 'allowedOrigins'>) {
    this.trusted = new Set(config.allowedOrigins);
    if (config.publicOrigin) this.trusted.add(config.publicOrigin);
  }

  /** Called once the port is known (PORT=0 picks one). */
  listening(port: number): void {
    if (this.config.publicOrigin) return;
    const host = this.config.host.toLowerCase();
    if (WILDCARD.has(host)) this.byHost = true;
    else if (LOOPBACK.has(host)) for (const h of ['localhost', '127.0.0.1', '[::1]']) this.trusted.add(`http://${h}:${port}`);
    else this.trusted.add(`http://${host.includes(':') ? `[${host}]` : host}:${port}`);
  }

  /** Whether the server has no public origin of its own to compare with (see above). */
  get usesHostHeader(): boolean {
    return this.byHost;
  }

  /** Whether a browser page from `origin` may use the server as its own (cookies, the WebSocket). */
  allows(origin: string, host: string | undefined): boolean {
    if (this.trusted.has(origin)) return true;
    if (!this.byHost || host === undefined) return false;
    try {
      return new URL(origin).host === host.toLowerCase();
    } catch {
      return false;
    }
  }
}
