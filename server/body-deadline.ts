/**
 * Cuts a request whose body stalls or dribbles: each window must bring at least
 * minBytesPerSecond x window bytes, else the connection is destroyed (a handler reading it sees
 * the request aborted; what a PATCH received so far stays, as for any cut chunk).
 */
import type { RequestHandler } from 'express';
import { hasBody } from './body.ts';

export interface BodyDeadline {
  windowMs: number;
  minBytesPerSecond: number;
}

export function bodyDeadline({ windowMs, minBytesPerSecond }: BodyDeadline): RequestHandler {
  const minPerWindow = Math.ceil((minBytesPerSecond * windowMs) / 1000);
  return (req, res, next) => {
    if (!hasBody(req) || req.complete) {
      next();
      return;
    }
    // bytesRead counts the socket, not this body, but only progress per window matters.
    const socket = req.socket;
    let mark = socket.bytesRead;
    const timer = setInterval(() => {
      if (req.complete || socket.destroyed) {
        stop();
        return;
      }
      const read = socket.bytesRead - mark;
      mark = socket.bytesRead;
      if (read >= minPerWindow) return;
      stop();
      req.log?.warn({ bytesInWindow: read, windowMs, minBytesPerSecond }, 'request body too slow; connection cut');
      socket.destroy();
    }, windowMs);
    timer.unref();
    const stop = (): void => clearInterval(timer);
    req.once('end', stop);
    res.once('close', stop);
    next();
  };
}
