/**
 * Node's process warnings (the AWS SDK's "requires node >=22" notice on Node 20, say) printed as the
 * registry prints everything else instead of as several raw lines of standard error: through the
 * JSON log when serving, as one `registry: warning:` line on the command line. Node's own printer is
 * the listener replaced here.
 */
export function routeProcessWarnings(report: (warning: { name: string; message: string }) => void): void {
  process.removeAllListeners('warning');
  process.on('warning', (warning: Error) => report({ name: warning.name, message: warning.message.replace(/\s+/g, ' ').trim() }));
}
