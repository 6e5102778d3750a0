/**
 * A client's address as it is recorded and compared: an IPv4 client of a dual-stack listener shows
 * up as `::ffff:127.0.0.1`, of an IPv4 listener as `127.0.0.1`; both are the same client.
 */
export function plainAddress(address: string): string {
  return address.startsWith('::ffff:') && address.includes('.') ? address.slice('::ffff:'.length) : address;
}
