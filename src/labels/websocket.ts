/**
 * WebSocket messages under the labels of their upgrade request.
 *
 * @fastify/websocket (11.x) routes the upgrade request through Fastify, so the onRequest hook
 * labels the upgrade and the route's websocket handler. Every message after that arrives as a
 * 'data' event of the upgraded TCP socket, which runs on the socket's own async context (the
 * server's connection), outside the request: measured, 0 of 524 burn samples of a message
 * handler carried its route on Node 20, 0 of 484 on Node 24.
 *
 * The cheapest exact place is the upgraded socket itself: `request.raw.socket` is the very socket
 * `ws` reads its frames from (ws's Receiver parses inside the socket's 'data' listener and emits
 * 'message' from there, synchronously). Its `emit` is wrapped once per upgrade, so each event's
 * listeners (frame parsing, the user's message handler, and everything they schedule or await)
 * run under the upgrade request's labels. This holds for any library built on the upgrade socket,
 * not only @fastify/websocket. Only websocket routes pay (a route-level hook added in onRoute):
 * other requests see no change. The wrap checks for an active session on each event (a
 * connection opened before a session started is labelled once it starts) and is removed when the
 * socket closes, or when the plugin closes.
 */
import type { Socket } from 'node:net';
import type { Labels } from '../types';

/** What the binding needs from the labeller: is a session on, and how to run under labels. */
export interface LabelRunner {
  readonly active: boolean;
  run<T>(labels: Labels, fn: () => T): T;
}

/** The route options fields that make a route a websocket route (@fastify/websocket 11). */
export interface WebSocketRouteOptions {
  websocket?: unknown;
  wsHandler?: unknown;
}

/** Whether @fastify/websocket serves upgrades of this route (`{ websocket: true }` or a `wsHandler`). */
export function isWebSocketRoute(route: object): boolean {
  const { websocket, wsHandler } = route as WebSocketRouteOptions;
  return websocket === true || typeof wsHandler === 'function';
}

/** EventEmitter's emit, as the socket has it (typed loosely: net.Socket declares overloads). */
type Emit = (event: string | symbol, ...args: unknown[]) => boolean;

interface Binding {
  /** the emit the socket had before */
  original: Emit;
  /** whether that emit was the socket's own property (else it came from the prototype) */
  own: boolean;
  wrapper: Emit;
  /** the socket's 'close' listener that unbinds it */
  onClose: () => void;
  /** turns the wrapper into a pass-through (when someone wrapped it since, it cannot be removed) */
  release(): void;
}

/** The sockets bound now, so the plugin's close can undo every wrap (bounded by open sockets). */
export class UpgradeSocketBindings {
  private readonly bound = new Map<Socket, Binding>();

  constructor(private readonly runner: LabelRunner) {}

  /** Sockets whose emit is wrapped now. */
  get size(): number {
    return this.bound.size;
  }

  /**
   * Wraps `socket.emit` so its listeners run under `labels` while a session is active. A socket
   * already bound, or already destroyed (it will emit nothing that matters), is left as it is.
   */
  bind(socket: Socket, labels: Labels): void {
    if (this.bound.has(socket) || socket.destroyed) return;
    const original = socket.emit as Emit;
    const runner = this.runner;
    let live = true;
    const wrapper = function emitUnderUpgradeLabels(this: Socket, event: string | symbol, ...args: unknown[]): boolean {
      if (!live || !runner.active) return original.call(this, event, ...args);
      return runner.run(labels, () => original.call(this, event, ...args));
    };
    const own = Object.prototype.hasOwnProperty.call(socket, 'emit');
    // 'close' is a socket's last event
    const onClose = (): void => this.unbind(socket);
    this.bound.set(socket, { original, own, wrapper, onClose, release: () => (live = false) });
    socket.once('close', onClose);
    socket.emit = wrapper as Socket['emit'];
  }

  /** Puts the socket's emit back. */
  unbind(socket: Socket): void {
    const binding = this.bound.get(socket);
    if (binding === undefined) return;
    this.bound.delete(socket);
    socket.removeListener('close', binding.onClose);
    binding.release();
    if ((socket.emit as Emit) !== binding.wrapper) return;
    if (binding.own) socket.emit = binding.original as Socket['emit'];
    else delete (socket as { emit?: Emit }).emit;
  }

  /** Undoes every wrap (the plugin closes). */
  unbindAll(): void {
    for (const socket of [...this.bound.keys()]) this.unbind(socket);
  }
}
