import { createHash, type Hash } from 'node:crypto';
import { crc32 } from 'node:zlib';

/**
 * The five "additional checksums" of S3 (x-amz-checksum-*), computed as S3 does: CRC32 (zlib), CRC32C, CRC64NVME
 * (the reflected CRC-64 of NVMe), SHA-1 and SHA-256, each as the base64 of its big-endian digest. The SDKs send one
 * on every upload (CRC32 by default), in a header or in the trailer of an aws-chunked body.
 */
export const CHECKSUM_ALGORITHMS = ['CRC32', 'CRC32C', 'CRC64NVME', 'SHA1', 'SHA256'] as const;
export type ChecksumAlgorithm = (typeof CHECKSUM_ALGORITHMS)[number];

export const checksumHeader = (algorithm: ChecksumAlgorithm) => `x-amz-checksum-${algorithm.toLowerCase()}`;

export function parseChecksumAlgorithm(value: string | undefined): ChecksumAlgorithm | undefined {
  if (!value) return undefined;
  const upper = value.toUpperCase();
  return (CHECKSUM_ALGORITHMS as readonly string[]).includes(upper) ? (upper as ChecksumAlgorithm) : undefined;
}

export interface Hasher {
  update(data: Uint8Array): void;
  /** base64 of the digest, as S3 writes it. */
  digest(): string;
}

function tableOf(poly: number): Uint32Array {
  const table = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? (c >>> 1) ^ poly : c >>> 1;
    table[n] = c >>> 0;
  }
  return table;
}

let crc32cTable: Uint32Array | undefined;
let crc64Tables: { lo: Uint32Array; hi: Uint32Array } | undefined;

/** CRC-64/NVME: reflected polynomial 0x9A6C9329AC4BC9B5, kept as two 32-bit halves (no BigInt in the loop). */
function crc64NvmeTables(): { lo: Uint32Array; hi: Uint32Array } {
  const lo = new Uint32Array(256);
  const hi = new Uint32Array(256);
  const polyLo = 0xac4bc9b5;
  const polyHi = 0x9a6c9329;
  for (let n = 0; n < 256; n++) {
    let l = n;
    let h = 0;
    for (let k = 0; k < 8; k++) {
      const odd = l & 1;
      l = (l >>> 1) | ((h & 1) << 31);
      h >>>= 1;
      if (odd) {
        l ^= polyLo;
        h ^= polyHi;
      }
    }
    lo[n] = l >>> 0;
    hi[n] = h >>> 0;
  }
  return { lo, hi };
}

const bigEndian32 = (value: number) => {
  const out = Buffer.alloc(4);
  out.writeUInt32BE(value >>> 0);
  return out.toString('base64');
};

function digestHasher(name: string): Hasher {
  const hash: Hash = createHash(name);
  return { update: (data) => hash.update(data), digest: () => hash.digest('base64') };
}

export function hasher(algorithm: ChecksumAlgorithm): Hasher {
  switch (algorithm) {
    case 'CRC32': {
      let value = 0;
      return {
        update(data) {
          value = crc32(data, value);
        },
        digest: () => bigEndian32(value),
      };
    }
    case 'CRC32C': {
      crc32cTable ??= tableOf(0x82f63b78);
      const table = crc32cTable;
      let c = 0xffffffff;
      return {
        update(data) {
          for (let i = 0; i < data.length; i++) c = table[(c ^ data[i]!) & 0xff]! ^ (c >>> 8);
        },
        digest: () => bigEndian32(~c),
      };
    }
    case 'CRC64NVME': {
      crc64Tables ??= crc64NvmeTables();
      const { lo: tlo, hi: thi } = crc64Tables;
      let lo = 0xffffffff;
      let hi = 0xffffffff;
      return {
        update(data) {
          for (let i = 0; i < data.length; i++) {
            const index = (lo ^ data[i]!) & 0xff;
            lo = ((lo >>> 8) | (hi << 24)) ^ tlo[index]!;
            hi = (hi >>> 8) ^ thi[index]!;
          }
        },
        digest() {
          const out = Buffer.alloc(8);
          out.writeUInt32BE(~hi >>> 0, 0);
          out.writeUInt32BE(~lo >>> 0, 4);
          return out.toString('base64');
        },
      };
    }
    case 'SHA1':
      return digestHasher('sha1');
    case 'SHA256':
      return digestHasher('sha256');
  }
}
