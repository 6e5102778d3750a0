/** A configuration (or policy, key, certificate) that cannot be used: the start stops with it. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ConfigError';
  }
}
