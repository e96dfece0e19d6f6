/**
 * A page's chat socket routed through this process: the page talks to playwright's stand-in
 * WebSocket, and a `ws` client here talks to the server. Frames pass straight through unless a test
 * holds them, in either direction, and lets them go when it chooses.
 *
 * Why: on a busy machine the browser can go hundreds of milliseconds without running, and the tiny
 * model writes a whole reply in less than that. A test that must see a reply half-written, or stop
 * one half-way, cannot wait on the browser's timing; it can wait on frames held here. The server
 * runs in this process too, so a frame released here reaches it without the browser in between.
 */
import type { Page, WebSocketRoute } from 'playwright-core';
import WebSocket from 'ws';

export type Direction = 'to_server' | 'to_page';

/** What the relay needs of a frame to match it: the protocol's `type` and request `id`. */
export interface RelayedFrame {
  type?: string;
  id?: unknown;
}

type Match = (frame: RelayedFrame) => boolean;

/** One page socket and its server socket. */
interface Link {
  to_server(text: string): void;
  to_page(text: string): void;
}

interface Lane {
  /** Frames matching this start being held; once one is held, every later one waits behind it (order is kept). */
  holdFrom: Match | null;
  held: { link: Link; text: string }[];
}

interface Watch {
  direction: Direction;
  match: Match;
  resolve: (frame: RelayedFrame) => void;
}

function parse(text: string): RelayedFrame {
  try {
    const v = JSON.parse(text) as unknown;
    return typeof v === 'object' && v !== null ? (v as RelayedFrame) : {};
  } catch {
    return {};
  }
}

/** A close code a `ws` client may send for the page (1005 and 1006 are only ever reported). */
function sendableCode(code: number | undefined): number {
  return code !== undefined && ((code >= 1000 && code <= 1014 && ![1004, 1005, 1006].includes(code)) || (code >= 3000 && code <= 4999)) ? code : 1000;
}

export class SocketRelay {
  private readonly lanes: Record<Direction, Lane> = {
    to_server: { holdFrom: null, held: [] },
    to_page: { holdFrom: null, held: [] },
  };
  private watches: Watch[] = [];

  /** Routes every WebSocket the page opens from now on whose URL matches `url` through a relay. */
  static async attach(page: Page, url: RegExp): Promise<SocketRelay> {
    const relay = new SocketRelay();
    await page.routeWebSocket(url, (route) => relay.connect(route));
    return relay;
  }

  /** Holds frames going `direction` from the first one that matches, until `release`. */
  hold(direction: Direction, from: Match): void {
    this.lanes[direction].holdFrom = from;
  }

  /** How many frames are held going `direction`. */
  heldCount(direction: Direction): number {
    return this.lanes[direction].held.length;
  }

  /**
   * Sends the first `count` held frames going `direction` (all when omitted). Releasing them all
   * also ends the hold: later frames pass again.
   */
  release(direction: Direction, count = Infinity): void {
    const lane = this.lanes[direction];
    const out = lane.held.splice(0, count);
    if (count === Infinity) lane.holdFrom = null;
    for (const { link, text } of out) this.deliver(direction, link, text);
  }

  /** Resolves with the next frame matching `match` that is delivered going `direction`. */
  next(direction: Direction, match: Match): Promise<RelayedFrame> {
    return new Promise((resolve) => this.watches.push({ direction, match, resolve }));
  }

  private connect(route: WebSocketRoute): void {
    // No Origin header: the server treats this like any program, which it lets in with a valid
    // session token; the token is in the URL the page asked for.
    const upstream = new WebSocket(route.url());
    const early: string[] = [];
    let pageClosed = false;
    const link: Link = {
      to_server: (text) => (upstream.readyState === WebSocket.OPEN ? upstream.send(text) : early.push(text)),
      to_page: (text) => {
        if (!pageClosed) route.send(text);
      },
    };
    const closePage = (code: number, reason: string) => {
      if (pageClosed) return;
      pageClosed = true;
      route.close({ code: sendableCode(code), reason }).catch(() => {});
    };
    upstream.on('open', () => {
      for (const text of early.splice(0)) upstream.send(text);
    });
    upstream.on('message', (data, isBinary) => {
      if (!isBinary) this.pass('to_page', link, data.toString());
    });
    upstream.on('close', (code, reason) => closePage(code, reason.toString()));
    upstream.on('error', () => closePage(1001, 'the server is unreachable'));
    route.onMessage((message) => this.pass('to_server', link, message.toString()));
    route.onClose((code) => {
      pageClosed = true;
      if (upstream.readyState === WebSocket.CONNECTING) upstream.terminate();
      else upstream.close(sendableCode(code));
    });
  }

  private pass(direction: Direction, link: Link, text: string): void {
    const lane = this.lanes[direction];
    if (lane.held.length > 0 || lane.holdFrom?.(parse(text))) lane.held.push({ link, text });
    else this.deliver(direction, link, text);
  }

  private deliver(direction: Direction, link: Link, text: string): void {
    link[direction](text);
    if (this.watches.length === 0) return;
    const frame = parse(text);
    const hits = this.watches.filter((w) => w.direction === direction && w.match(frame));
    this.watches = this.watches.filter((w) => !hits.includes(w));
    for (const w of hits) w.resolve(frame);
  }
}
