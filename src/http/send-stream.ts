import type { Readable } from 'node:stream';
import { isRecycling } from '../storage/recycling.js';
import type { RegistryContext } from './context.js';

/**
 * Sends `stream` as the response body, with the status and headers the handler sets. A stream that
 * takes its chunks back gets each one back as soon as the socket has taken its bytes (the write's
 * callback), which Koa's pipe cannot say; it is written here, past Koa. Any other goes through Koa.
 * Set the body before its length: Koa drops Content-Length when a stream becomes the body.
 */
export function respondWithStream(ctx: RegistryContext, stream: Readable): void {
  if (!isRecycling(stream)) {
    ctx.body = stream;
    return;
  }
  ctx.respond = false;
  const response = ctx.res;
  response.once('close', () => stream.destroy());
  stream.once('error', (error: Error) => {
    // Past the headers nothing can be said to the client but that the answer is cut short.
    ctx.app.emit('error', error, ctx);
    response.destroy();
  });
  stream.on('data', (chunk: Buffer) => {
    const more = response.write(chunk, (error) => {
      if (!error) stream.recycle(chunk);
    });
    if (!more) {
      stream.pause();
      response.once('drain', () => stream.resume());
    }
  });
  stream.once('end', () => response.end());
}
