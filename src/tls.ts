import { readFileSync } from 'node:fs';
import type { Server as HttpsServer, ServerOptions } from 'node:https';
import type { Socket } from 'node:net';
import type { SecureContextOptions, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import { ConfigError } from './config/config-error.js';
import type { RegistryConfig } from './config/schema.js';
import { watchFiles } from './file-watch.js';

/** The TLS files (http.tls), as Distribution names them. */
export interface TlsFiles {
  certificate: string;
  key: string;
  /** CA certificates client certificates must be signed by (mutual TLS); none: no client certificate asked. */
  clientCas: readonly string[];
  minimumTls: 'tls1.2' | 'tls1.3';
}

/** The TLS settings, or null when TLS is off; a certificate without a key (or the other way) stops the start. */
export function tlsFiles(config: RegistryConfig): TlsFiles | null {
  const tls = config.http.tls;
  if (tls.certificate === '' && tls.key === '') {
    if (tls.clientcas.length > 0) throw new ConfigError('http.tls.clientcas needs http.tls.certificate and http.tls.key (mutual TLS is TLS)');
    return null;
  }
  if (tls.certificate === '' || tls.key === '') throw new ConfigError('http.tls.certificate and http.tls.key go together: set both (PEM files) or neither');
  return { certificate: tls.certificate, key: tls.key, clientCas: tls.clientcas, minimumTls: tls.minimumtls };
}

function read(file: string, what: string): Buffer {
  try {
    return readFileSync(file);
  } catch (error) {
    throw new ConfigError(`${what} ${file}: ${(error as Error).message}`);
  }
}

/** What the files say now: certificate, key and client CAs, read and checked together. */
export function secureContextOptions(files: TlsFiles): SecureContextOptions {
  return {
    cert: read(files.certificate, 'http.tls.certificate'),
    key: read(files.key, 'http.tls.key'),
    ...(files.clientCas.length > 0 ? { ca: files.clientCas.map((file) => read(file, 'http.tls.clientcas')) } : {}),
    minVersion: files.minimumTls === 'tls1.3' ? 'TLSv1.3' : 'TLSv1.2',
  };
}

/** Options of the HTTPS server: HTTP/1.1 over TLS; with client CAs, a client without a certificate they signed is refused in the handshake. */
export function httpsServerOptions(files: TlsFiles): ServerOptions {
  return {
    ...secureContextOptions(files),
    ALPNProtocols: ['http/1.1'],
    ...(files.clientCas.length > 0 ? { requestCert: true, rejectUnauthorized: true } : {}),
  };
}

/**
 * Reloads the certificate, key and client CAs when one of the files changes (cert-manager, certbot)
 * or on `reload()` (SIGHUP): new connections get the new ones, open connections go on. Files that
 * cannot be read or do not fit together keep the old ones in use, with the reason logged.
 */
export function reloadableTls(server: HttpsServer, files: TlsFiles, logger: Logger): { reload(reason: string): void; stop(): void } {
  const reload = (reason: string) => {
    try {
      server.setSecureContext(secureContextOptions(files));
      logger.info({ reason, certificate: files.certificate }, 'TLS certificate reloaded');
    } catch (error) {
      logger.error({ reason, err: error }, 'TLS certificate not reloaded: the files in use stay in use');
    }
  };
  const stop = watchFiles([files.certificate, files.key, ...files.clientCas], () => reload('file changed'));
  return { reload, stop };
}

/** What Distribution (Go's net/http) answers a plain HTTP request on its TLS port. */
const plainHttpAnswer = 'HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\nConnection: close\r\n\r\nClient sent an HTTP request to an HTTPS server.\n';

/**
 * A client speaking plain HTTP to the TLS port (`curl http://…`, a registry configured without
 * TLS) gets a 400 naming the mistake instead of an empty reply. OpenSSL recognises the request in
 * the handshake; the answer goes out in plain text on the connection's TCP socket, found by its
 * address and port (the TLS socket would encrypt it).
 */
export function answerPlainHttp(server: HttpsServer): void {
  const raw = new Map<string, Socket>();
  const keyOf = (socket: { remoteAddress?: string | undefined; remotePort?: number | undefined }) => `${socket.remoteAddress ?? ''}|${socket.remotePort ?? ''}`;
  server.on('connection', (socket: Socket) => {
    const key = keyOf(socket);
    raw.set(key, socket);
    socket.once('close', () => {
      if (raw.get(key) === socket) raw.delete(key);
    });
  });
  server.on('tlsClientError', (error: NodeJS.ErrnoException, tlsSocket: TLSSocket) => {
    if (error.code !== 'ERR_SSL_HTTP_REQUEST') return;
    const socket = raw.get(keyOf(tlsSocket));
    if (socket && !socket.destroyed) socket.end(plainHttpAnswer);
  });
}
