// Which partition a keyed record goes to: FNV-1a (32-bit) of the key's UTF-8
// bytes modulo the partition count — stable across nodes, restarts and versions.

const enc = new TextEncoder();

export function keyHash(key: string): number {
  let h = 0x811c9dc5;
  for (const b of enc.encode(key)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h >>> 0;
}

export function partitionForKey(key: string, partitions: number): number {
  return keyHash(key) % partitions;
}
