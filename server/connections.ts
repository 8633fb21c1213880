/**
 * Which connections of a server have a request in flight, so a stop closes the others at once.
 * Node's closeIdleConnections skips a connection that has not sent a request yet (a client's
 * spare keep-alive connection, a TLS connection still in or just past its handshake): one such
 * silent client held SIGTERM for the whole grace period.
 */
import type { Server } from 'node:http';
import type { Socket } from 'node:net';

interface Tracker {
  sockets: Set<Socket>;
  busy: Map<Socket, number>;
}

const trackers = new WeakMap<Server, Tracker>();

/** The TCP socket under a request's socket (a TLS socket wraps it as _parent). */
function tcpOf(socket: Socket): Socket {
  return (socket as Socket & { _parent?: Socket })._parent ?? socket;
}

export function trackConnections(server: Server): void {
  const t: Tracker = { sockets: new Set(), busy: new Map() };
  server.on('connection', (socket: Socket) => {
    t.sockets.add(socket);
    socket.once('close', () => {
      t.sockets.delete(socket);
      t.busy.delete(socket);
    });
  });
  server.on('request', (req, res) => {
    const socket = tcpOf(req.socket);
    t.busy.set(socket, (t.busy.get(socket) ?? 0) + 1);
    res.once('close', () => {
      const left = (t.busy.get(socket) ?? 1) - 1;
      if (left > 0) t.busy.set(socket, left);
      else t.busy.delete(socket);
    });
  });
  trackers.set(server, t);
}

/** Closes every connection without a request in flight (whether it ever sent one or not). */
export function closeQuietConnections(server: Server): void {
  server.closeIdleConnections();
  const t = trackers.get(server);
  if (!t) return;
  for (const socket of t.sockets) if (!t.busy.has(socket)) socket.destroy();
}
