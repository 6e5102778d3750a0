#!/usr/bin/env node
/**
 * The container's HEALTHCHECK: GET /readyz on the address the server listens on, read from the same
 * configuration (file and REGISTRY_* variables), over HTTPS when http.tls is set. Exit 0 when ready,
 * 1 otherwise. A separate entry point so that a probe every few seconds loads only the configuration
 * code, not the whole registry.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { loadConfig } from './config/load.js';
import { parseListenAddress } from './config/schema.js';

const timeoutMs = 4000;

function probeHost(listenHost: string | undefined): string {
  if (listenHost === undefined || listenHost === '0.0.0.0') return '127.0.0.1';
  if (listenHost === '::') return '::1';
  return listenHost;
}

function probe(): Promise<number> {
  const { config } = loadConfig();
  const { host, port } = parseListenAddress(config.http.addr);
  const tls = config.http.tls.certificate !== '';
  const options = { host: probeHost(host), port, path: '/readyz', method: 'GET', timeout: timeoutMs };
  return new Promise((resolve, reject) => {
    // The probe asks whether this process is ready, not who it is: the certificate names the
    // registry's public host, not the loopback address asked here, so it is not verified.
    const request = tls ? httpsRequest({ ...options, rejectUnauthorized: false }) : httpRequest(options);
    request.on('response', (response) => {
      response.resume();
      resolve(response.statusCode ?? 0);
    });
    request.on('timeout', () => request.destroy(new Error(`no answer within ${timeoutMs} ms`)));
    request.on('error', reject);
    request.end();
  });
}

probe().then(
  (status) => {
    if (status !== 200) process.stderr.write(`/readyz answered ${status}\n`);
    process.exit(status === 200 ? 0 : 1);
  },
  (error: Error) => {
    process.stderr.write(`/readyz: ${error.message}\n`);
    process.exit(1);
  },
);
