/**
 * The client's address, which the per-address limits count by. Without a proxy (TRUST_PROXY=0) it is
 * the socket's peer: a header can be forged, a TCP peer cannot. Behind N proxies it is the entry of
 * X-Forwarded-For that the outermost trusted proxy appended: N entries from the end (each proxy appends
 * the peer it saw, so the entries before those are whatever the client claimed).
 */
import { isIP } from 'node:net';

/** `::ffff:1.2.3.4` (IPv4 on a dual-stack socket) as `1.2.3.4`, so one client has one address. */
function normalize(address: string): string {
  const a = address.trim().toLowerCase();
  return a.startsWith('::ffff:') && isIP(a.slice(7)) === 4 ? a.slice(7) : a;
}

export function clientAddress(peer: string | undefined, forwardedFor: string | string[] | undefined, trustProxy: number): string {
  const socket = normalize(peer ?? 'unknown');
  if (trustProxy === 0 || forwardedFor === undefined) return socket;
  const entries = (Array.isArray(forwardedFor) ? forwardedFor.join(',') : forwardedFor).split(',').map((s) => s.trim()).filter(Boolean);
  if (entries.length === 0) return socket;
  // Fewer entries than proxies: the request did not come through all of them; the first is the best guess.
  const picked = entries[Math.max(0, entries.length - trustProxy)];
  return isIP(normalize(picked)) ? normalize(picked) : socket;
}
