import { createHash } from 'node:crypto';
import { createWriteStream, type WriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import { finished } from 'node:stream/promises';
import { OWNER_FILE } from '../../functions/shared/local-files.ts';
import { type Body, IN_MEMORY_BODY_LIMIT } from './object-store.ts';
import {
  CHECKSUM_ALGORITHMS,
  type ChecksumAlgorithm,
  checksumHeader,
  type Hasher,
  hasher,
  parseChecksumAlgorithm,
} from './s3-checksums.ts';
import { headerNotImplemented, incompleteBody, invalidArgument, S3Error } from './s3-errors.ts';

/**
 * An upload's body as S3 receives it: plain, or `aws-chunked` (what the SDKs and the AWS CLI send for streams:
 * `<hex size>[;chunk-signature=…]\r\n<bytes>\r\n … 0\r\n<trailer: value>\r\n\r\n`, with the checksum in the trailer),
 * hashed as it arrives (MD5 for the ETag, and each x-amz-checksum-* the request announces), kept in memory up to
 * 16 MiB and in a temporary file beyond. Then checked the way S3 checks it: Content-MD5, x-amz-content-sha256,
 * x-amz-decoded-content-length and the checksums; a mismatch is refused and nothing is stored.
 */
export type RequestHeaders = Record<string, string | undefined>;
export type RequestBody = Buffer | AsyncIterable<Uint8Array>;

export interface ReceivedBody {
  body: Body;
  size: number;
  /** Hex MD5: the ETag of a single-part upload. */
  md5: string;
  /** The checksum the request carried (header or trailer), checked. */
  checksum?: { algorithm: ChecksumAlgorithm; value: string };
}

const MAX_UPLOAD = 5 * 1024 ** 3;
const STREAMING = 'STREAMING-';

const isAwsChunked = (headers: RequestHeaders) =>
  Boolean(
    headers['x-amz-content-sha256']?.startsWith(STREAMING) ||
      headers['content-encoding']?.split(',').some((e) => e.trim() === 'aws-chunked'),
  );

const entityTooLarge = (size: number) =>
  new S3Error('EntityTooLarge', 400, 'Your proposed upload exceeds the maximum allowed object size.', {
    ProposedSize: String(size),
    MaxSizeAllowed: String(MAX_UPLOAD),
  });

/** Decode an aws-chunked stream; the trailer's fields land in `trailers`. */
async function* decodeAwsChunked(source: RequestBody, trailers: Record<string, string>): AsyncGenerator<Buffer> {
  const iterable: AsyncIterable<Uint8Array> = Buffer.isBuffer(source)
    ? (async function* () {
        yield source;
      })()
    : source;
  const iterator = iterable[Symbol.asyncIterator]();
  let pending = Buffer.alloc(0);
  let ended = false;
  const pull = async () => {
    const next = await iterator.next();
    if (next.done) ended = true;
    else pending = pending.length ? Buffer.concat([pending, Buffer.from(next.value)]) : Buffer.from(next.value);
  };
  const line = async (): Promise<string | null> => {
    for (;;) {
      const at = pending.indexOf('\r\n');
      if (at >= 0) {
        const text = pending.subarray(0, at).toString('latin1');
        pending = pending.subarray(at + 2);
        return text;
      }
      if (ended) return null;
      if (pending.length > 64 * 1024) throw invalidArgument('aws-chunked: a chunk header is too long');
      await pull();
    }
  };
  for (;;) {
    const header = await line();
    if (header === null) throw incompleteBody();
    const size = Number.parseInt(header.split(';')[0]!.trim(), 16);
    if (!/^[0-9a-fA-F]+$/.test(header.split(';')[0]!.trim()) || !Number.isSafeInteger(size))
      throw invalidArgument(`aws-chunked: bad chunk header "${header.slice(0, 80)}"`);
    if (size === 0) break;
    let left = size;
    while (left > 0) {
      if (pending.length === 0) {
        if (ended) throw incompleteBody();
        await pull();
        continue;
      }
      const take = pending.subarray(0, Math.min(left, pending.length));
      pending = pending.subarray(take.length);
      left -= take.length;
      yield take;
    }
    if ((await line()) !== '') throw invalidArgument('aws-chunked: a chunk does not end with CRLF');
  }
  for (;;) {
    const field = await line();
    if (field === null || field === '') break;
    const colon = field.indexOf(':');
    if (colon > 0) trailers[field.slice(0, colon).trim().toLowerCase()] = field.slice(colon + 1).trim();
  }
}

/** The checksums this request asks S3 to check: named in a header, announced as a trailer, or by the SDK. */
function announcedAlgorithms(headers: RequestHeaders): ChecksumAlgorithm[] {
  const out = new Set<ChecksumAlgorithm>();
  for (const algorithm of CHECKSUM_ALGORITHMS) if (headers[checksumHeader(algorithm)] !== undefined) out.add(algorithm);
  for (const name of (headers['x-amz-trailer'] ?? '').split(',')) {
    const m = /^x-amz-checksum-(\w+)$/.exec(name.trim().toLowerCase());
    const algorithm = parseChecksumAlgorithm(m?.[1]);
    if (algorithm) out.add(algorithm);
  }
  const sdk = parseChecksumAlgorithm(headers['x-amz-sdk-checksum-algorithm']);
  if (sdk) out.add(sdk);
  return [...out];
}

/** The temporary file a body past IN_MEMORY_BODY_LIMIT goes on into. */
interface Spill {
  file: string;
  out: WriteStream;
  /** Rejects with the file's first error (the disk full, the folder gone…): the upload fails with it, 500. */
  failed: Promise<never>;
  drained: () => Promise<void>;
}

/**
 * A write stream with its error always listened for: an error nobody listens for would end the process (every
 * upload, the gateway's own exports, with it), and Node reports one even after a deliberate destroy() when a write
 * was in flight.
 */
function openSpill(file: string): Spill {
  const out = createWriteStream(file, { mode: OWNER_FILE });
  const failed = new Promise<never>((_, reject) => out.on('error', reject));
  failed.catch(() => undefined);
  return { file, out, failed, drained: () => new Promise<void>((resolve) => out.once('drain', () => resolve())) };
}

export async function receiveBody(
  source: RequestBody,
  headers: RequestHeaders,
  tempPath: () => string,
): Promise<ReceivedBody> {
  const chunked = isAwsChunked(headers);
  // Refused by its headers before any byte of it is read (an Expect: 100-continue client then sends none): S3 takes
  // no body of unknown length (Transfer-Encoding: chunked, unless aws-chunked with its decoded length, as the SDKs
  // send a stream), nor one over 5 GiB.
  if (headers['transfer-encoding'] !== undefined && headers['x-amz-decoded-content-length'] === undefined)
    throw headerNotImplemented('Transfer-Encoding');
  const declared = Number(headers[chunked ? 'x-amz-decoded-content-length' : 'content-length']);
  if (declared > MAX_UPLOAD) throw entityTooLarge(declared);
  const trailers: Record<string, string> = {};
  const algorithms = announcedAlgorithms(headers);
  const contentSha = headers['x-amz-content-sha256'];
  const signedSha = contentSha && /^[0-9a-f]{64}$/i.test(contentSha) ? contentSha.toLowerCase() : undefined;

  const md5 = createHash('md5');
  const sha256 = signedSha ? createHash('sha256') : null;
  const hashers = new Map<ChecksumAlgorithm, Hasher>(algorithms.map((a) => [a, hasher(a)]));
  const chunks: Buffer[] = [];
  let size = 0;
  let spill: Spill | null = null;
  const take = async (data: Buffer) => {
    size += data.length;
    if (size > MAX_UPLOAD) throw entityTooLarge(size);
    md5.update(data);
    sha256?.update(data);
    for (const h of hashers.values()) h.update(data);
    if (!spill && size > IN_MEMORY_BODY_LIMIT) {
      spill = openSpill(tempPath());
      for (const c of chunks.splice(0)) spill.out.write(c);
    }
    if (spill) {
      if (!spill.out.write(data)) await Promise.race([spill.drained(), spill.failed]);
    } else {
      chunks.push(data);
    }
  };

  try {
    if (chunked) for await (const data of decodeAwsChunked(source, trailers)) await take(data);
    else if (Buffer.isBuffer(source)) await take(source);
    else for await (const data of source) await take(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    const spilled = spill as Spill | null;
    if (spilled) {
      spilled.out.end();
      await finished(spilled.out);
    }

    const received: ReceivedBody = {
      body: spilled ? { file: spilled.file, size } : chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks),
      size,
      md5: md5.digest('hex'),
    };
    const decodedLength = headers['x-amz-decoded-content-length'];
    if (chunked && decodedLength !== undefined && Number(decodedLength) !== size) throw incompleteBody();
    const contentMd5 = headers['content-md5'];
    if (contentMd5 !== undefined) {
      const given = Buffer.from(contentMd5, 'base64');
      if (given.length !== 16) throw new S3Error('InvalidDigest', 400, 'The Content-MD5 you specified was invalid.');
      if (given.toString('hex') !== received.md5)
        throw new S3Error('BadDigest', 400, 'The Content-MD5 you specified did not match what we received.');
    }
    if (sha256 && sha256.digest('hex') !== signedSha) {
      throw new S3Error(
        'XAmzContentSHA256Mismatch',
        400,
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
      );
    }
    for (const [algorithm, h] of hashers) {
      const name = checksumHeader(algorithm);
      const given = headers[name] ?? trailers[name];
      if (given === undefined) continue;
      if (h.digest() !== given)
        throw new S3Error('BadDigest', 400, `The ${algorithm} you specified did not match the calculated checksum.`);
      received.checksum ??= { algorithm, value: given };
    }
    return received;
  } catch (error) {
    const spilled = spill as Spill | null;
    if (spilled) {
      // Closed before its file is removed: a write still in flight ends first (Node then reports it as an error of
      // the destroyed stream, which openSpill listens for).
      spilled.out.destroy();
      await finished(spilled.out).catch(() => undefined);
      await rm(spilled.file, { force: true });
    }
    // The client went away or was cut off mid-body (too slow: RequestTimeout): its request is incomplete, not a
    // fault here.
    if ((error as NodeJS.ErrnoException).code === 'ECONNRESET') throw incompleteBody();
    throw error;
  }
}

/** A small request document (DeleteObjects, CompleteMultipartUpload), checked like any body. */
export async function receiveDocument(
  source: RequestBody,
  headers: RequestHeaders,
  tempPath: () => string,
  limit = 2 * 1024 * 1024,
): Promise<string> {
  const declared = Number(headers['content-length'] ?? 0);
  if (declared > limit) throw new S3Error('MaxMessageLengthExceeded', 400, 'Your request was too big.');
  const { body, size } = await receiveBody(source, headers, tempPath);
  if (!Buffer.isBuffer(body) || size > limit) {
    if (!Buffer.isBuffer(body)) await rm(body.file, { force: true });
    throw new S3Error('MaxMessageLengthExceeded', 400, 'Your request was too big.');
  }
  return body.toString('utf8');
}
