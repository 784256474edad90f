import type { Readable } from 'node:stream';
import {
  type StorageFailure,
  storageFailureLine,
  storageFailureOf,
  storageRefusal,
} from '../server/storage-failure.ts';
import {
  assertPartNumber,
  type ListPage,
  type ObjectAttributes,
  type ObjectInfo,
  type ObjectStore,
  STORED_HEADERS,
  type StoredObject,
  type WriteCondition,
} from './object-store.ts';
import { type ChecksumAlgorithm, checksumHeader, parseChecksumAlgorithm } from './s3-checksums.ts';
import {
  headerNotImplemented,
  invalidArgument,
  malformedXml,
  methodNotAllowed,
  noSuchBucket,
  noSuchKey,
  noSuchVersion,
  notImplemented,
  preconditionFailed,
  S3Error,
} from './s3-errors.ts';
import {
  type ReceivedBody,
  type RequestBody,
  type RequestHeaders,
  receiveBody,
  receiveDocument,
} from './s3-request-body.ts';
import { tagSetXml, tagsFromHeader, tagsFromXml } from './s3-tagging.ts';
import { childrenNamed, childText, element, parseXml, xmlDocument } from './s3-xml.ts';

/**
 * The S3 REST API subset the AWS SDKs and the AWS CLI use, over an ObjectStore: buckets (list, create, head, delete,
 * location), ListObjectsV2 and ListObjects (prefix, delimiter, StartAfter, continuation tokens, markers, MaxKeys,
 * EncodingType=url), Get (Range, partNumber, conditions, response-* overrides) / Head / Put (plain or aws-chunked,
 * checksums) / Copy / Delete / DeleteObjects, object tags (s3-tagging.ts), multipart uploads (ListMultipartUploads paged
 * by key and upload-id markers), and ListObjectVersions of the unversioned bucket (each object its one version,
 * null). Path-style requests (`/bucket/key`); the HTTP server maps `<bucket>.localhost` hosts onto them. Signatures are
 * not checked: any credentials work, as they did with the emulator this replaces (a presigned URL's time is:
 * refuseExpiredPresignedUrl).
 * What is not implemented answers 501 NotImplemented; a header it cannot honour is refused too, never ignored
 * (refuseUnhonouredHeaders).
 *
 * One instance serves both doors of the embedded S3: the HTTP endpoint and the in-process transport the local
 * gateway gives its S3 client, so both see the same objects with the same rules.
 */
export interface S3Request {
  method: string;
  /** The path as sent, still percent-encoded: `/`, `/bucket`, `/bucket/key`. */
  path: string;
  query: URLSearchParams;
  /** Lower-case names. */
  headers: RequestHeaders;
  body: RequestBody;
}

export interface S3Response {
  status: number;
  headers: Record<string, string>;
  body?: Buffer | Readable;
}

const OWNER = {
  ID: '75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a',
  DisplayName: 'webhook-gateway',
};
const ownerXml = `<Owner>${element('ID', OWNER.ID)}${element('DisplayName', OWNER.DisplayName)}</Owner>`;
const RESPONSE_OVERRIDES = [
  'content-type',
  'content-language',
  'expires',
  'cache-control',
  'content-disposition',
  'content-encoding',
];
/**
 * Sub-resources the subset does not implement (every one the SDK in package-lock.json sends): refused rather than
 * mistaken for a listing or an object, which for a PUT or DELETE would overwrite or delete it (RenameObject, an
 * object's annotation, a bucket's metadata table).
 */
const UNSUPPORTED = [
  'acl',
  'policy',
  'policyStatus',
  'cors',
  'lifecycle',
  'website',
  'encryption',
  'logging',
  'notification',
  'replication',
  'requestPayment',
  'accelerate',
  'analytics',
  'inventory',
  'metrics',
  'intelligent-tiering',
  'object-lock',
  'ownershipControls',
  'publicAccessBlock',
  'retention',
  'legal-hold',
  'torrent',
  'restore',
  'select',
  'attributes',
  'session',
  'renameObject',
  'annotation',
  'abac',
  'metadataConfiguration',
  'metadataTable',
  'metadataAnnotationTable',
  'metadataInventoryTable',
  'metadataJournalTable',
];
const MAX_KEY_BYTES = 1024;
/** S3's limit on an object's user-defined metadata (x-amz-meta-*): its names and values, 2 KB in all. */
const MAX_METADATA_BYTES = 2048;

export function isValidBucketName(name: string): boolean {
  return /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(name) && !name.includes('..') && !/^\d+\.\d+\.\d+\.\d+$/.test(name);
}

/** EncodingType=url as S3 applies it (the AWS CLI decodes with unquote_plus, the SDKs leave it to the caller). */
const urlEncode = (value: string) => encodeURIComponent(value);

const etagOf = (info: Pick<ObjectInfo, 'etag'>) => `"${info.etag}"`;
const httpDate = (iso: string) => new Date(iso).toUTCString();

/**
 * A `response-*` override as S3 takes it: a value no HTTP header can carry (a character past ISO-8859-1, a control
 * character that would end the header) is refused, 400 InvalidArgument naming the parameter, as S3 answers. Before,
 * Node refused to write the header and the client's connection was dropped without an answer.
 */
function overrideValue(parameter: string, value: string): string {
  if (/[^\t\x20-\x7e\x80-\xff]/.test(value))
    throw invalidArgument('Header value cannot be represented using ISO-8859-1.', parameter, value);
  return value;
}

/** Non-ASCII metadata values go out as RFC 2047 words, as S3 sends them (HTTP header values are Latin-1). */
const headerValue = (value: string) =>
  /^[\x20-\x7e\t]*$/.test(value) ? value : `=?UTF-8?B?${Buffer.from(value).toString('base64')}?=`;

function attributesFrom(headers: RequestHeaders): ObjectAttributes {
  const stored: Record<string, string> = {};
  for (const name of STORED_HEADERS) {
    let value = headers[name];
    if (name === 'content-encoding' && value)
      value = value
        .split(',')
        .map((e) => e.trim())
        .filter((e) => e && e !== 'aws-chunked')
        .join(', ');
    if (value) stored[name] = value;
  }
  const metadata: Record<string, string> = {};
  let metadataSize = 0;
  for (const [name, value] of Object.entries(headers))
    if (name.startsWith('x-amz-meta-') && value !== undefined) {
      metadata[name.slice(11)] = value;
      metadataSize += Buffer.byteLength(name.slice(11)) + Buffer.byteLength(value);
    }
  if (metadataSize > MAX_METADATA_BYTES)
    throw new S3Error('MetadataTooLarge', 400, 'Your metadata headers exceed the maximum allowed metadata size.', {
      Size: String(metadataSize),
      MaxSizeAllowed: String(MAX_METADATA_BYTES),
    });
  return {
    contentType: headers['content-type'] || 'binary/octet-stream',
    ...(Object.keys(stored).length ? { headers: stored } : {}),
    ...(Object.keys(metadata).length ? { metadata } : {}),
  };
}

/** What a write stores: its attributes (above) and the tags of its x-amz-tagging header. */
function writeAttributes(headers: RequestHeaders): ObjectAttributes {
  const tags = tagsFromHeader(headers['x-amz-tagging']);
  return { ...attributesFrom(headers), ...(tags ? { tags } : {}) };
}

function objectHeaders(info: ObjectInfo, checksumMode: boolean): Record<string, string> {
  const headers: Record<string, string> = {
    'content-type': info.contentType,
    etag: etagOf(info),
    'last-modified': httpDate(info.modified),
    'accept-ranges': 'bytes',
    ...info.headers,
  };
  for (const [name, value] of Object.entries(info.metadata ?? {})) headers[`x-amz-meta-${name}`] = headerValue(value);
  if (info.tags) headers['x-amz-tagging-count'] = String(Object.keys(info.tags).length);
  if (checksumMode && info.checksum) {
    headers[checksumHeader(info.checksum.algorithm)] = info.checksum.value;
    headers['x-amz-checksum-type'] = 'FULL_OBJECT';
  }
  return headers;
}

const etagMatches = (list: string, etag: string) =>
  list.split(',').some((t) => t.trim() === '*' || t.trim().replace(/^W\//, '').replace(/"/g, '') === etag);

/** If-Match, If-None-Match, If-(Un)Modified-Since (or their x-amz-copy-source-if-* forms) in S3's order. */
function checkConditions(info: ObjectInfo, headers: RequestHeaders, prefix = ''): 'ok' | 'not-modified' {
  const get = (name: string) => headers[`${prefix}${name}`];
  const modified = Math.floor(Date.parse(info.modified) / 1000) * 1000;
  const ifMatch = get('if-match');
  const ifUnmodified = get('if-unmodified-since');
  if (ifMatch !== undefined) {
    if (!etagMatches(ifMatch, info.etag)) throw preconditionFailed(prefix ? 'x-amz-copy-source-If-Match' : 'If-Match');
  } else if (
    ifUnmodified !== undefined &&
    !Number.isNaN(Date.parse(ifUnmodified)) &&
    modified > Date.parse(ifUnmodified)
  ) {
    throw preconditionFailed(prefix ? 'x-amz-copy-source-If-Unmodified-Since' : 'If-Unmodified-Since');
  }
  const ifNoneMatch = get('if-none-match');
  const ifModified = get('if-modified-since');
  const notModified =
    ifNoneMatch !== undefined
      ? etagMatches(ifNoneMatch, info.etag)
      : ifModified !== undefined && !Number.isNaN(Date.parse(ifModified)) && modified <= Date.parse(ifModified);
  if (!notModified) return 'ok';
  if (prefix)
    throw preconditionFailed(
      ifNoneMatch !== undefined ? 'x-amz-copy-source-If-None-Match' : 'x-amz-copy-source-If-Modified-Since',
    );
  return 'not-modified';
}

/** `bytes=a-b`, `bytes=a-`, `bytes=-n` → an inclusive range; null: serve the whole object (absent or ignorable). */
function parseRange(header: string | undefined, size: number): { start: number; end: number } | null {
  const m = header ? /^bytes=(\d*)-(\d*)$/.exec(header.trim()) : null;
  if (!m || (m[1] === '' && m[2] === '')) return null;
  let start: number;
  let end: number;
  if (m[1] === '') {
    const suffix = Number(m[2]);
    if (suffix === 0) throw invalidRange(header!, size);
    start = Math.max(0, size - suffix);
    end = size - 1;
  } else {
    start = Number(m[1]);
    end = m[2] === '' ? size - 1 : Math.min(Number(m[2]), size - 1);
    if (m[2] !== '' && Number(m[2]) < start) return null;
  }
  if (start >= size) throw invalidRange(header!, size);
  return { start, end };
}

/**
 * The bytes of part `n` of an object (GetObject / HeadObject's partNumber), as S3 serves them: of a multipart object,
 * that part's (206, with Content-Range and x-amz-mp-parts-count); of another, part 1 is the whole object (null: served
 * as without partNumber). A part it does not have: 416 InvalidPartNumber; with a Range too: 400 InvalidRequest.
 */
function partRange(info: ObjectInfo, n: number, range: string | undefined): { start: number; end: number } | null {
  if (range !== undefined)
    throw new S3Error('InvalidRequest', 400, 'Cannot specify both Range header and partNumber query parameter');
  // One completed before part sizes were kept has them still when it has one part: its whole size. Of one of more
  // parts, their sizes are unknown: it is served as an object not uploaded in parts (part 1 the whole object, no parts
  // count, which S3 returns for multipart objects only), so a client reading it by parts reads it whole, in one.
  const byParts = info.parts !== undefined && (info.partSizes !== undefined || info.parts === 1);
  const sizes = byParts ? (info.partSizes ?? [info.size]) : [info.size];
  if (n > sizes.length)
    throw new S3Error('InvalidPartNumber', 416, 'The requested partnumber is not satisfiable', {
      PartNumberRequested: String(n),
      ActualPartCount: String(sizes.length),
    });
  if (!byParts) return null;
  const start = sizes.slice(0, n - 1).reduce((sum, size) => sum + size, 0);
  return { start, end: start + sizes[n - 1]! - 1 };
}

/** As S3 answers a range that starts past the end: the object's size in the document and in `Content-Range`. */
const invalidRange = (requested: string, size: number) =>
  new S3Error(
    'InvalidRange',
    416,
    'The requested range is not satisfiable',
    { RangeRequested: requested, ActualObjectSize: String(size) },
    { 'content-range': `bytes */${size}` },
  );

function parseMaxKeys(value: string | null, name = 'max-keys'): number {
  if (value === null || value === '') return 1000;
  if (!/^\d+$/.test(value))
    throw invalidArgument(`Provided ${name} not an integer or within integer range`, name, value);
  return Math.min(Number(value), 1000);
}

type ListingParameters = ReturnType<typeof listingParameters>;

/** What every object listing takes: EncodingType, prefix, delimiter and max-keys. */
function listingParameters(query: URLSearchParams) {
  const encodingType = query.get('encoding-type');
  if (encodingType !== null && encodingType.toLowerCase() !== 'url')
    throw invalidArgument('Invalid Encoding Method specified in Request', 'encoding-type', encodingType);
  return {
    encodingType,
    encode: encodingType ? urlEncode : (v: string) => v,
    prefix: query.get('prefix') ?? '',
    delimiter: query.get('delimiter') ?? '',
    maxKeys: parseMaxKeys(query.get('max-keys')),
  };
}

/** What every object listing answers of its parameters and page (MaxKeys … EncodingType), and its CommonPrefixes. */
function listingResult({ encodingType, encode, delimiter, maxKeys }: ListingParameters, page: ListPage) {
  return {
    tail: `${element('MaxKeys', maxKeys)}${delimiter ? element('Delimiter', encode(delimiter)) : ''}${element('IsTruncated', page.truncated)}${encodingType ? element('EncodingType', 'url') : ''}`,
    prefixes: page.prefixes.map((p) => `<CommonPrefixes>${element('Prefix', encode(p))}</CommonPrefixes>`).join(''),
  };
}

const encodeToken = (key: string) => Buffer.from(key, 'utf8').toString('base64');
function decodeToken(token: string): string {
  const key = Buffer.from(token, 'base64').toString('utf8');
  if (encodeToken(key) !== token)
    throw invalidArgument('The continuation token provided is incorrect', 'continuation-token', token);
  return key;
}

const queryAuthError = (message: string) => new S3Error('AuthorizationQueryParametersError', 400, message);
const isoSeconds = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

/**
 * A presigned URL works until it expires and is refused after, as S3 refuses it, though its signature is not checked:
 * 403 AccessDenied, "Request has expired". SigV4's (the SDKs' presigners, AWS CLI v2's `aws s3 presign`: X-Amz-Date
 * and X-Amz-Expires, checked as S3 checks them: the long ISO 8601 format, at most a week) and SigV2's (AWS CLI v1's:
 * Expires, in seconds since 1970, beside AWSAccessKeyId).
 */
function refuseExpiredPresignedUrl(query: URLSearchParams, now: number): void {
  const expires = query.get('X-Amz-Expires');
  const date = query.get('X-Amz-Date');
  const v2Expires = query.has('AWSAccessKeyId') ? query.get('Expires') : null;
  let end: number;
  if (expires !== null && date !== null) {
    const at = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(date);
    if (!at) throw queryAuthError(`X-Amz-Date must be in the ISO8601 Long Format "yyyyMMdd'T'HHmmss'Z'"`);
    if (!/^\d+$/.test(expires)) throw queryAuthError('X-Amz-Expires should be a number');
    if (Number(expires) > 604_800)
      throw queryAuthError('X-Amz-Expires must be less than a week (in seconds) that is 604800');
    const [year, month, day, hours, minutes, seconds] = at.slice(1).map(Number) as [number, ...number[]];
    end = Date.UTC(year, month! - 1, day, hours, minutes, seconds) + Number(expires) * 1000;
  } else if (v2Expires !== null && /^\d+$/.test(v2Expires)) {
    end = Number(v2Expires) * 1000;
  } else {
    return;
  }
  if (now > end)
    throw new S3Error('AccessDenied', 403, 'Request has expired', {
      ...(expires !== null ? { 'X-Amz-Expires': expires } : {}),
      Expires: isoSeconds(end),
      ServerTime: isoSeconds(now),
    });
}

let requestCounter = 0;
const newRequestId = () => (++requestCounter).toString(16).toUpperCase().padStart(16, '0');

/** An error as S3 answers it: its `<Error>` document, or for a HEAD (no body) its code in x-amz-error-code. */
export function errorResponse(e: S3Error, head: boolean, requestId = newRequestId()): S3Response {
  if (head) return { status: e.status, headers: { ...e.headers, 'x-amz-error-code': e.code } };
  const fields = Object.entries(e.fields)
    .map(([k, v]) => element(k, v))
    .join('');
  return {
    status: e.status,
    headers: {
      ...e.headers,
      'content-type': 'application/xml',
      'x-amz-request-id': requestId,
      'x-amz-id-2': requestId,
    },
    body: xmlDocument(
      'Error',
      `${element('Code', e.code)}${element('Message', e.message)}${fields}${element('RequestId', requestId)}`,
      false,
    ),
  };
}

/**
 * The data folder refusing the request (full, over its quota, read-only, its permissions, the process out of file
 * descriptors: local/server/storage-failure.ts): 503 ServiceUnavailable, as S3 answers when it cannot serve for now
 * and as the gateway answers its own callers (STORAGE_UNAVAILABLE), not 500 InternalError, which says the embedded S3
 * failed: the SDKs and the AWS CLI retry both, and the message says what to mend. No Retry-After, as S3 sends none:
 * the SDK would wait on it (5 s at most) before each retry, holding the gateway's Export that long.
 */
const serviceUnavailable = (failure: StorageFailure) =>
  new S3Error('ServiceUnavailable', 503, `The embedded S3 ${storageRefusal(failure)}: please try again once it can.`);

export class S3Api {
  constructor(readonly store: ObjectStore) {}

  async handle(request: S3Request): Promise<S3Response> {
    const requestId = newRequestId();
    let response: S3Response;
    try {
      response = await this.route(request);
    } catch (error) {
      const refused = error instanceof S3Error ? null : storageFailureOf(error);
      // One line, no stack: the folder and the system's message (naming the file), as the gateway's own lines say it.
      if (refused)
        process.stderr.write(
          `${storageFailureLine(this.store.root, refused, `embedded S3 ${request.method} ${request.path}`, 'ServiceUnavailable')}\n`,
        );
      else if (!(error instanceof S3Error))
        process.stderr.write(`embedded S3: ${request.method} ${request.path}: ${(error as Error).stack}\n`);
      const e =
        error instanceof S3Error
          ? error
          : refused
            ? serviceUnavailable(refused)
            : new S3Error('InternalError', 500, `We encountered an internal error: ${(error as Error).message}`);
      response = errorResponse(e, request.method === 'HEAD', requestId);
    }
    response.headers['x-amz-request-id'] = requestId;
    response.headers['x-amz-id-2'] = requestId;
    return response;
  }

  private async route(request: S3Request): Promise<S3Response> {
    const { method, query } = request;
    refuseExpiredPresignedUrl(query, Date.now());
    const slash = request.path.indexOf('/', 1);
    let bucket: string;
    let key: string;
    try {
      bucket = decodeURIComponent(request.path.slice(1, slash < 0 ? undefined : slash));
      key = slash < 0 ? '' : decodeURIComponent(request.path.slice(slash + 1));
    } catch {
      throw new S3Error('InvalidURI', 400, "Couldn't parse the specified URI.", { URI: request.path });
    }
    const unsupported = UNSUPPORTED.find((name) => query.has(name));
    if (!bucket) {
      // `//key` names no bucket: neither the service (`/`) nor a bucket's object.
      if (request.path !== '/')
        throw new S3Error('InvalidURI', 400, "Couldn't parse the specified URI.", { URI: request.path });
      if (method === 'GET') return this.listBuckets();
      throw methodNotAllowed(method, 'SERVICE');
    }
    if (!isValidBucketName(bucket)) {
      if (method === 'PUT' && !key)
        throw new S3Error('InvalidBucketName', 400, 'The specified bucket is not valid.', { BucketName: bucket });
      throw noSuchBucket(bucket);
    }
    if (unsupported) throw notImplemented(`?${unsupported}`);
    if (!key) return this.bucketRequest(request, bucket);
    if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError', 400, 'Your key is too long');
    return this.objectRequest(request, bucket, key);
  }

  // Service and buckets

  private async listBuckets(): Promise<S3Response> {
    const buckets = (await this.store.listBuckets())
      .map((b) => `<Bucket>${element('Name', b.name)}${element('CreationDate', b.created.toISOString())}</Bucket>`)
      .join('');
    return xmlResponse('ListAllMyBucketsResult', `${ownerXml}<Buckets>${buckets}</Buckets>`);
  }

  private async bucketRequest(request: S3Request, bucket: string): Promise<S3Response> {
    const { method, query } = request;
    if (method === 'PUT') {
      if (query.has('tagging') || query.has('versioning'))
        throw notImplemented(query.has('tagging') ? '?tagging' : '?versioning');
      // A bucket with Object Lock would be created without it (every lock on its objects then refused).
      if (request.headers['x-amz-bucket-object-lock-enabled']?.toLowerCase() === 'true')
        throw headerNotImplemented('x-amz-bucket-object-lock-enabled');
      await this.store.createBucket(bucket); // an existing one of ours: 200, as S3 answers in us-east-1
      return { status: 200, headers: { location: `/${bucket}` } };
    }
    await this.store.assertBucket(bucket);
    switch (method) {
      case 'HEAD':
        return { status: 200, headers: { 'x-amz-bucket-region': 'us-east-1' } };
      case 'DELETE':
        if (query.has('tagging')) throw notImplemented('?tagging');
        await this.store.deleteBucket(bucket);
        return { status: 204, headers: {} };
      case 'POST':
        if (query.has('delete')) return this.deleteObjects(request, bucket);
        break;
      case 'GET':
        if (query.has('location')) return xmlResponse('LocationConstraint', '');
        if (query.has('versioning')) return xmlResponse('VersioningConfiguration', '');
        if (query.has('tagging'))
          throw new S3Error('NoSuchTagSet', 404, 'The TagSet does not exist', { BucketName: bucket });
        if (query.has('uploads')) return this.listUploads(bucket, query);
        if (query.has('versions')) return this.listVersions(bucket, query);
        return this.listObjects(bucket, query);
    }
    throw methodNotAllowed(method, 'BUCKET');
  }

  private async listObjects(bucket: string, query: URLSearchParams): Promise<S3Response> {
    const v2 = query.get('list-type') === '2';
    if (query.has('list-type') && !v2)
      throw invalidArgument('Invalid List Type specified in Request', 'list-type', query.get('list-type')!);
    const listing = listingParameters(query);
    const { encode, prefix, delimiter, maxKeys } = listing;
    const token = query.get('continuation-token');
    const startAfter = query.get('start-after') ?? '';
    const marker = query.get('marker') ?? '';
    const after = v2 ? (token !== null ? decodeToken(token) : startAfter) : marker;
    const page = await this.store.list(bucket, { prefix, delimiter, after, maxKeys });

    const owner = !v2 || query.get('fetch-owner') === 'true' ? ownerXml : '';
    const contents = page.objects
      .map(
        ({ key, info }) =>
          `<Contents>${element('Key', encode(key))}${element('LastModified', info.modified)}${element('ETag', etagOf(info))}${info.checksum ? element('ChecksumAlgorithm', info.checksum.algorithm) + element('ChecksumType', 'FULL_OBJECT') : ''}${element('Size', info.size)}${owner}${element('StorageClass', 'STANDARD')}</Contents>`,
      )
      .join('');
    const { prefixes, tail } = listingResult(listing, page);
    const common = `${element('Name', bucket)}${element('Prefix', encode(prefix))}`;
    if (v2) {
      const next =
        page.truncated && page.last !== undefined ? element('NextContinuationToken', encodeToken(page.last)) : '';
      const keyCount = element('KeyCount', page.objects.length + page.prefixes.length);
      return xmlResponse(
        'ListBucketResult',
        `${common}${tail}${keyCount}${element('ContinuationToken', token ?? undefined)}${next}${startAfter ? element('StartAfter', encode(startAfter)) : ''}${contents}${prefixes}`,
      );
    }
    const nextMarker =
      page.truncated && delimiter && page.last !== undefined ? element('NextMarker', encode(page.last)) : '';
    return xmlResponse(
      'ListBucketResult',
      `${common}${element('Marker', encode(marker))}${nextMarker}${tail}${contents}${prefixes}`,
    );
  }

  /**
   * ListObjectVersions of this unversioned bucket, as S3 lists one: each object once, as its one version (`null`,
   * the latest), no delete markers; paged by key marker (the version-id marker can only be `null`).
   */
  private async listVersions(bucket: string, query: URLSearchParams): Promise<S3Response> {
    const listing = listingParameters(query);
    const { encode, prefix, delimiter, maxKeys } = listing;
    const keyMarker = query.get('key-marker') ?? '';
    const versionIdMarker = query.get('version-id-marker');
    if (versionIdMarker !== null && !keyMarker)
      throw invalidArgument(
        'A version-id marker cannot be specified without a key marker.',
        'version-id-marker',
        versionIdMarker,
      );
    if (versionIdMarker !== null && versionIdMarker !== 'null')
      throw invalidArgument('Invalid version id specified', 'version-id-marker', versionIdMarker);
    const page = await this.store.list(bucket, { prefix, delimiter, after: keyMarker, maxKeys });
    const versions = page.objects
      .map(
        ({ key, info }) =>
          `<Version>${element('Key', encode(key))}${element('VersionId', 'null')}${element('IsLatest', true)}${element('LastModified', info.modified)}${element('ETag', etagOf(info))}${element('Size', info.size)}${ownerXml}${element('StorageClass', 'STANDARD')}</Version>`,
      )
      .join('');
    const { prefixes, tail } = listingResult(listing, page);
    const next =
      page.truncated && page.last !== undefined
        ? `${element('NextKeyMarker', encode(page.last))}${element('NextVersionIdMarker', 'null')}`
        : '';
    return xmlResponse(
      'ListVersionsResult',
      `${element('Name', bucket)}${element('Prefix', encode(prefix))}${element('KeyMarker', encode(keyMarker))}${element('VersionIdMarker', versionIdMarker ?? '')}${next}${tail}${versions}${prefixes}`,
    );
  }

  private async deleteObjects(request: S3Request, bucket: string): Promise<S3Response> {
    const document = parseXml(await receiveDocument(request.body, request.headers, () => this.store.tempPath()));
    if (document.name !== 'Delete') throw malformedXml();
    const objects = childrenNamed(document, 'Object');
    if (objects.length === 0 || objects.length > 1000) throw malformedXml();
    const quiet = childText(document, 'Quiet')?.trim() === 'true';
    let out = '';
    for (const object of objects) {
      const key = childText(object, 'Key');
      if (key === undefined) throw malformedXml();
      // A version other than the null one is none of this unversioned bucket's: deleted as S3 deletes one it does
      // not have, nothing removed (objectRequest); a malformed one is an error, NoSuchVersion, as S3 answers.
      const versionId = childText(object, 'VersionId');
      const other = versionId !== undefined && versionId !== 'null';
      try {
        if (Buffer.byteLength(key) > MAX_KEY_BYTES) throw new S3Error('KeyTooLongError', 400, 'Your key is too long');
        if (other && !isVersionId(versionId)) throw noSuchVersion(key, versionId);
        if (!other) await this.store.delete(bucket, key, deleteCondition(key, childText(object, 'ETag')));
        if (!quiet) out += `<Deleted>${element('Key', key)}${element('VersionId', versionId)}</Deleted>`;
      } catch (error) {
        const e = error instanceof S3Error ? error : new S3Error('InternalError', 500, (error as Error).message);
        out += `<Error>${element('Key', key)}${element('VersionId', versionId)}${element('Code', e.code)}${element('Message', e.message)}</Error>`;
      }
    }
    return xmlResponse('DeleteResult', out);
  }

  private async listUploads(bucket: string, query: URLSearchParams): Promise<S3Response> {
    // Uploads are listed one by one, never rolled up into common prefixes: a listing asked to would be another one.
    if (query.get('delimiter')) throw notImplemented('delimiter on ListMultipartUploads');
    const prefix = query.get('prefix') ?? '';
    const maxUploads = parseMaxKeys(query.get('max-uploads'), 'max-uploads');
    // S3's paging: the uploads after key-marker (with upload-id-marker, also those of that key listed after that
    // upload), in key order and, within a key, in the order they began; NextKeyMarker and NextUploadIdMarker name the
    // last one of a truncated page.
    const keyMarker = query.get('key-marker') ?? '';
    const uploadIdMarker = keyMarker ? (query.get('upload-id-marker') ?? '') : '';
    const { uploads, truncated } = await this.store.listUploads(bucket, {
      prefix,
      keyMarker,
      uploadIdMarker,
      maxUploads,
    });
    const last = uploads.at(-1);
    const items = uploads
      .map(
        (u) =>
          `<Upload>${element('Key', u.key)}${element('UploadId', u.id)}<Initiator>${element('ID', OWNER.ID)}${element('DisplayName', OWNER.DisplayName)}</Initiator>${ownerXml}${element('StorageClass', 'STANDARD')}${element('Initiated', u.initiated)}</Upload>`,
      )
      .join('');
    const next =
      truncated && last ? `${element('NextKeyMarker', last.key)}${element('NextUploadIdMarker', last.id)}` : '';
    return xmlResponse(
      'ListMultipartUploadsResult',
      `${element('Bucket', bucket)}${element('KeyMarker', keyMarker)}${element('UploadIdMarker', uploadIdMarker)}${next}${element('Prefix', prefix)}${element('MaxUploads', maxUploads)}${element('IsTruncated', truncated)}${items}`,
    );
  }

  // Objects

  private async objectRequest(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    const { method, query } = request;
    if (method === 'GET' || method === 'HEAD') refuseEncryptionOnRead(request.headers);
    refuseUnhonouredHeaders(request.headers);
    const versionId = query.get('versionId');
    if (
      versionId !== null &&
      versionId !== 'null' &&
      !query.has('uploadId') &&
      ['GET', 'HEAD', 'DELETE'].includes(method)
    ) {
      // The bucket is not versioned: each object is its one version, `null` (docs/operations.md#read-the-exports).
      // Another is none of its versions: a read of it 404, a delete of it 204 with nothing deleted, as S3 answers (a
      // malformed one 400).
      if (versionId === '') throw invalidArgument('Version id cannot be the empty string', 'versionId', '');
      assertVersionId(versionId, 'versionId');
      await this.store.assertBucket(bucket);
      if (method !== 'DELETE') throw noSuchVersion(key, versionId);
      return { status: 204, headers: { 'x-amz-version-id': versionId } };
    }
    if (query.has('tagging')) return this.objectTagging(request, bucket, key);
    switch (method) {
      case 'GET':
        if (query.has('uploadId')) return this.listParts(bucket, key, query);
        return encryptedAtRest(await this.read(request, bucket, key));
      case 'HEAD':
        return encryptedAtRest(await this.read(request, bucket, key));
      case 'PUT':
        if (query.has('uploadId') || query.has('partNumber'))
          return encryptedAtRest(await this.uploadPart(request, bucket, key));
        if (request.headers['x-amz-copy-source'] !== undefined)
          return encryptedAtRest(await this.copyObject(request, bucket, key));
        return encryptedAtRest(await this.putObject(request, bucket, key));
      case 'DELETE':
        if (query.has('uploadId')) {
          await this.store.abortUpload(
            this.uploadOf(query, bucket, key, await this.store.getUpload(query.get('uploadId')!)),
          );
          return { status: 204, headers: {} };
        }
        await this.store.assertBucket(bucket);
        await this.store.delete(bucket, key, deleteCondition(key, request.headers['if-match']));
        return { status: 204, headers: {} };
      case 'POST':
        if (query.has('uploads')) return encryptedAtRest(await this.createUpload(request, bucket, key));
        if (query.has('uploadId')) return encryptedAtRest(await this.completeUpload(request, bucket, key));
        throw notImplemented('POST on an object');
    }
    throw methodNotAllowed(method, 'OBJECT');
  }

  /** GetObjectTagging, PutObjectTagging (the tags replaced) and DeleteObjectTagging (none left). */
  private async objectTagging(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    switch (request.method) {
      case 'GET': {
        const object = await this.getObject(bucket, key, true);
        await object.close();
        return xmlResponse('Tagging', tagSetXml(object.info.tags));
      }
      case 'PUT': {
        await this.store.assertBucket(bucket);
        const document = parseXml(await receiveDocument(request.body, request.headers, () => this.store.tempPath()));
        await this.store.setTags(bucket, key, tagsFromXml(document));
        return { status: 200, headers: {} };
      }
      case 'DELETE':
        await this.store.setTags(bucket, key, undefined);
        return { status: 204, headers: {} };
    }
    throw methodNotAllowed(request.method, 'OBJECT');
  }

  private async getObject(bucket: string, key: string, headOnly: boolean): Promise<StoredObject> {
    const object = await this.store.get(bucket, key, headOnly);
    if (object) return object;
    await this.store.assertBucket(bucket);
    throw noSuchKey(key);
  }

  private async read(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    const { headers, query } = request;
    const head = request.method === 'HEAD';
    const object = await this.getObject(bucket, key, head);
    const { info } = object;
    let servingBody = false;
    try {
      const partNumber = query.get('partNumber');
      const part = partNumber === null ? null : partRange(info, assertPartNumber(partNumber), headers.range);
      if (checkConditions(info, headers) === 'not-modified') {
        return { status: 304, headers: { etag: etagOf(info), 'last-modified': httpDate(info.modified) } };
      }
      const range = part ?? parseRange(headers.range, info.size);
      const out = objectHeaders(info, !range && headers['x-amz-checksum-mode']?.toUpperCase() === 'ENABLED');
      if (part) out['x-amz-mp-parts-count'] = String(info.parts);
      for (const name of RESPONSE_OVERRIDES) {
        const value = query.get(`response-${name}`);
        if (value !== null) out[name] = overrideValue(`response-${name}`, value);
      }
      const start = range?.start ?? 0;
      const end = range?.end ?? info.size - 1;
      out['content-length'] = String(Math.max(0, end - start + 1));
      if (range) out['content-range'] = `bytes ${start}-${end}/${info.size}`;
      const status = range ? 206 : 200;
      if (head || end < start) return { status, headers: out, ...(head ? {} : { body: Buffer.alloc(0) }) };
      servingBody = true;
      return { status, headers: out, body: object.body(start, end) };
    } finally {
      if (!servingBody) await object.close();
    }
  }

  private receive(request: S3Request): Promise<ReceivedBody> {
    return receiveBody(request.body, request.headers, () => this.store.tempPath());
  }

  private async putObject(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    const { headers } = request;
    await this.store.assertBucket(bucket);
    // An append (directory buckets only) would otherwise replace the object with the appended bytes.
    if (headers['x-amz-write-offset-bytes'] !== undefined) throw headerNotImplemented('x-amz-write-offset-bytes');
    const condition = writeCondition(key, headers);
    const attributes = writeAttributes(headers);
    const received = await this.receive(request);
    const info: ObjectInfo = {
      size: received.size,
      etag: received.md5,
      modified: new Date().toISOString(),
      ...attributes,
      ...(received.checksum ? { checksum: received.checksum } : {}),
    };
    await this.store.put(bucket, key, info, received.body, condition);
    return { status: 200, headers: { etag: etagOf(info), ...checksumResponse(received.checksum) } };
  }

  private async openCopySource(
    headers: RequestHeaders,
  ): Promise<{ bucket: string; key: string; object: StoredObject }> {
    const raw = headers['x-amz-copy-source'] ?? '';
    let bucket: string;
    let key: string;
    try {
      const [pathPart, versionPart] = raw.replace(/^\//, '').split('?');
      const slash = pathPart!.indexOf('/');
      bucket = decodeURIComponent(pathPart!.slice(0, slash));
      key = decodeURIComponent(pathPart!.slice(slash + 1));
      if (slash <= 0 || !key) throw new Error('no key');
      if (versionPart && versionPart !== 'versionId=null') {
        const versionId = decodeURIComponent(versionPart.replace(/^versionId=/, ''));
        assertVersionId(versionId, 'x-amz-copy-source');
        throw noSuchVersion(key, versionId);
      }
    } catch (error) {
      if (error instanceof S3Error) throw error;
      throw invalidArgument(
        'Copy Source must mention the source bucket and key: sourcebucket/sourcekey',
        'x-amz-copy-source',
        raw,
      );
    }
    if (!isValidBucketName(bucket)) throw noSuchBucket(bucket);
    const object = await this.getObject(bucket, key, false);
    try {
      if (checkConditions(object.info, headers, 'x-amz-copy-source-') !== 'ok')
        throw preconditionFailed('x-amz-copy-source-If-None-Match');
    } catch (error) {
      await object.close();
      throw error;
    }
    return { bucket, key, object };
  }

  private async copyObject(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    const { headers } = request;
    await this.store.assertBucket(bucket);
    const condition = writeCondition(key, headers); // on the destination, as a PutObject's
    const source = await this.openCopySource(headers);
    const directive = (headers['x-amz-metadata-directive'] ?? 'COPY').toUpperCase();
    const tagging = (headers['x-amz-tagging-directive'] ?? 'COPY').toUpperCase();
    try {
      if (directive !== 'COPY' && directive !== 'REPLACE')
        throw invalidArgument('Unknown metadata directive.', 'x-amz-metadata-directive', directive);
      if (tagging !== 'COPY' && tagging !== 'REPLACE')
        throw invalidArgument('Unknown tagging directive.', 'x-amz-tagging-directive', tagging);
      if (source.bucket === bucket && source.key === key && directive === 'COPY') {
        throw new S3Error(
          'InvalidRequest',
          400,
          "This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes.",
        );
      }
      const { contentType, headers: stored, metadata, tags } = source.object.info;
      const attributes = directive === 'REPLACE' ? attributesFrom(headers) : { contentType, headers: stored, metadata };
      const info = await this.store.copy(
        source.object,
        bucket,
        key,
        { ...attributes, tags: tagging === 'REPLACE' ? tagsFromHeader(headers['x-amz-tagging']) : tags },
        condition,
      );
      const checksum = info.checksum ? element(`Checksum${info.checksum.algorithm}`, info.checksum.value) : '';
      return xmlResponse(
        'CopyObjectResult',
        `${element('LastModified', info.modified)}${element('ETag', etagOf(info))}${checksum}`,
      );
    } finally {
      await source.object.close();
    }
  }

  // Multipart uploads

  private uploadOf(
    query: URLSearchParams,
    bucket: string,
    key: string,
    upload: { bucket: string; key: string },
  ): string {
    const uploadId = query.get('uploadId')!;
    if (upload.bucket !== bucket || upload.key !== key)
      throw new S3Error('NoSuchUpload', 404, 'The specified upload does not exist.', { UploadId: uploadId });
    return uploadId;
  }

  private async createUpload(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    const algorithm = parseChecksumAlgorithm(request.headers['x-amz-checksum-algorithm']);
    const uploadId = await this.store.createUpload({
      bucket,
      key,
      attributes: writeAttributes(request.headers),
      ...(algorithm ? { checksumAlgorithm: algorithm } : {}),
    });
    const response = xmlResponse(
      'InitiateMultipartUploadResult',
      `${element('Bucket', bucket)}${element('Key', key)}${element('UploadId', uploadId)}`,
    );
    if (algorithm) response.headers['x-amz-checksum-algorithm'] = algorithm;
    return response;
  }

  private async uploadPart(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    const { query, headers } = request;
    const partNumber = assertPartNumber(query.get('partNumber'));
    const uploadId = this.uploadOf(query, bucket, key, await this.store.getUpload(query.get('uploadId') ?? ''));
    if (headers['x-amz-copy-source'] === undefined) {
      const received = await this.receive(request);
      await this.store.putPart(
        uploadId,
        {
          partNumber,
          size: received.size,
          etag: received.md5,
          modified: new Date().toISOString(),
          ...(received.checksum ? { checksum: received.checksum } : {}),
        },
        received.body,
      );
      return { status: 200, headers: { etag: `"${received.md5}"`, ...checksumResponse(received.checksum) } };
    }
    const source = await this.openCopySource(headers);
    let received: ReceivedBody;
    try {
      const rangeHeader = headers['x-amz-copy-source-range'];
      const range = rangeHeader ? /^bytes=(\d+)-(\d+)$/.exec(rangeHeader) : null;
      if (
        rangeHeader &&
        (!range || Number(range[2]) < Number(range[1]) || Number(range[2]) >= source.object.info.size)
      ) {
        throw invalidArgument(
          'The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy',
          'x-amz-copy-source-range',
          rangeHeader,
        );
      }
      const body = source.object.body(
        range ? Number(range[1]) : 0,
        range ? Number(range[2]) : source.object.info.size - 1,
      );
      received = await receiveBody(body, {}, () => this.store.tempPath());
    } finally {
      await source.object.close();
    }
    const modified = new Date().toISOString();
    await this.store.putPart(
      uploadId,
      { partNumber, size: received.size, etag: received.md5, modified },
      received.body,
    );
    return xmlResponse('CopyPartResult', `${element('LastModified', modified)}${element('ETag', `"${received.md5}"`)}`);
  }

  private async completeUpload(request: S3Request, bucket: string, key: string): Promise<S3Response> {
    const uploadId = this.uploadOf(
      request.query,
      bucket,
      key,
      await this.store.getUpload(request.query.get('uploadId')!),
    );
    const document = parseXml(await receiveDocument(request.body, request.headers, () => this.store.tempPath()));
    if (document.name !== 'CompleteMultipartUpload') throw malformedXml();
    const parts = childrenNamed(document, 'Part').map((part) => {
      const number = childText(part, 'PartNumber')?.trim() ?? '';
      const etag = childText(part, 'ETag');
      if (!/^\d+$/.test(number) || etag === undefined) throw malformedXml();
      return { partNumber: Number(number), etag: etag.trim() };
    });
    const { info } = await this.store.completeUpload(uploadId, parts, writeCondition(key, request.headers));
    const location = `http://${request.headers.host ?? 'localhost'}/${encodeURIComponent(bucket)}/${key.split('/').map(encodeURIComponent).join('/')}`;
    return xmlResponse(
      'CompleteMultipartUploadResult',
      `${element('Location', location)}${element('Bucket', bucket)}${element('Key', key)}${element('ETag', etagOf(info))}`,
    );
  }

  private async listParts(bucket: string, key: string, query: URLSearchParams): Promise<S3Response> {
    const uploadId = this.uploadOf(query, bucket, key, await this.store.getUpload(query.get('uploadId')!));
    const marker = Number(query.get('part-number-marker') ?? 0) || 0;
    const maxParts = parseMaxKeys(query.get('max-parts'), 'max-parts');
    const all = await this.store.listParts(uploadId, marker, maxParts + 1);
    const parts = all.slice(0, maxParts);
    const truncated = all.length > parts.length;
    const items = parts
      .map(
        (p) =>
          `<Part>${element('PartNumber', p.partNumber)}${element('LastModified', p.modified)}${element('ETag', `"${p.etag}"`)}${p.checksum ? element(`Checksum${p.checksum.algorithm}`, p.checksum.value) : ''}${element('Size', p.size)}</Part>`,
      )
      .join('');
    const next = truncated ? element('NextPartNumberMarker', parts.at(-1)!.partNumber) : '';
    return xmlResponse(
      'ListPartsResult',
      `${element('Bucket', bucket)}${element('Key', key)}${element('UploadId', uploadId)}${element('PartNumberMarker', marker)}${next}${element('MaxParts', maxParts)}${element('IsTruncated', truncated)}${items}`,
    );
  }
}

/**
 * SSE-C (x-amz-server-side-encryption-customer-* on a write, a read or a copy's destination;
 * x-amz-copy-source-server-side-encryption-customer-* for a copy's source): the embedded S3 encrypts nothing, so an
 * object "encrypted with the customer's key" would be stored plain and read back without the key. Refused before
 * anything is read or written with 501 NotImplemented naming the header, S3's answer to a header it does not honour
 * (docs/operations.md#read-the-exports): S3's own answers would mislead here (over HTTP it asks for a secure
 * connection, which would not help; to a read of an object stored without SSE-C, that the key does not apply).
 */
const SSE_C_HEADERS = [
  'x-amz-server-side-encryption-customer-algorithm',
  'x-amz-server-side-encryption-customer-key',
  'x-amz-server-side-encryption-customer-key-md5',
  'x-amz-copy-source-server-side-encryption-customer-algorithm',
  'x-amz-copy-source-server-side-encryption-customer-key',
  'x-amz-copy-source-server-side-encryption-customer-key-md5',
];

/** S3's storage classes (x-amz-storage-class): another value is refused as S3 refuses it, 400 InvalidStorageClass. */
const STORAGE_CLASSES = [
  'STANDARD',
  'REDUCED_REDUNDANCY',
  'STANDARD_IA',
  'ONEZONE_IA',
  'INTELLIGENT_TIERING',
  'GLACIER',
  'DEEP_ARCHIVE',
  'OUTPOSTS',
  'GLACIER_IR',
  'SNOW',
  'EXPRESS_ONEZONE',
  'FSX_OPENZFS',
  'FSX_ONTAP',
];

const OBJECT_LOCK_HEADERS = [
  'x-amz-object-lock-mode',
  'x-amz-object-lock-retain-until-date',
  'x-amz-object-lock-legal-hold',
];

const ACL_GRANTS = [
  'x-amz-grant-full-control',
  'x-amz-grant-read',
  'x-amz-grant-read-acp',
  'x-amz-grant-write',
  'x-amz-grant-write-acp',
];

/** What an object request asks that the embedded S3 cannot honour, refused as S3 refuses it rather than ignored. */
function refuseUnhonouredHeaders(headers: RequestHeaders): void {
  const sseC = SSE_C_HEADERS.find((name) => headers[name] !== undefined);
  if (sseC) throw headerNotImplemented(sseC);
  // Every object is STANDARD (as listings say): another class would be listed and read as STANDARD, an archived one
  // read without its restore.
  const storageClass = headers['x-amz-storage-class'];
  if (storageClass !== undefined && storageClass !== 'STANDARD') {
    if (!STORAGE_CLASSES.includes(storageClass))
      throw new S3Error('InvalidStorageClass', 400, 'The storage class you specified is not valid', {
        StorageClassRequested: storageClass,
      });
    throw headerNotImplemented('x-amz-storage-class');
  }
  // There is no website endpoint to redirect, and the location is not kept to be read back.
  if (headers['x-amz-website-redirect-location'] !== undefined)
    throw headerNotImplemented('x-amz-website-redirect-location');
  // The bucket has no Object Lock: S3 refuses a lock on an object of such a bucket so.
  if (OBJECT_LOCK_HEADERS.some((name) => headers[name] !== undefined))
    throw new S3Error('InvalidRequest', 400, 'Bucket is missing Object Lock Configuration');
  // ACLs are disabled, as on the deployed bucket (Bucket owner enforced, in
  // infra/constructs/conversation-export-bucket.ts), where S3 refuses a write with another ACL than
  // bucket-owner-full-control.
  const acl = headers['x-amz-acl'];
  if (
    (acl !== undefined && acl !== 'bucket-owner-full-control') ||
    ACL_GRANTS.some((name) => headers[name] !== undefined)
  )
    throw new S3Error('AccessControlListNotSupported', 400, 'The bucket does not allow ACLs');
  // Nothing is encrypted with a KMS key here: the object would be stored plain and read by anyone without the key's
  // grant. SSE-S3 (AES256), what the deployed bucket applies anyway, is taken; a method S3 does not have is refused.
  const sse = headers['x-amz-server-side-encryption'];
  if (sse !== undefined && !['AES256', 'aws:kms', 'aws:kms:dsse'].includes(sse))
    throw invalidArgument('The encryption method specified is not supported', 'x-amz-server-side-encryption', sse);
  if (sse?.startsWith('aws:kms')) throw headerNotImplemented('x-amz-server-side-encryption');
  if (headers['x-amz-server-side-encryption-aws-kms-key-id'] !== undefined)
    throw headerNotImplemented('x-amz-server-side-encryption-aws-kms-key-id');
}

/**
 * S3 encrypts every object at rest, SSE-S3 unless told otherwise, and says so on each write and read of one
 * (x-amz-server-side-encryption: AES256, the AWS API reference, PutObject and GetObject), as the deployed bucket does:
 * the embedded S3 says the same on PUT, GET, HEAD, copies and multipart uploads, so a client that checks it works here
 * too. (It encrypts nothing: the data folder is the user's own, docs/operations.md.)
 */
function encryptedAtRest(response: S3Response): S3Response {
  if (response.status === 200 || response.status === 206) response.headers['x-amz-server-side-encryption'] = 'AES256';
  return response;
}

/**
 * A read names no server-side encryption: S3 decrypts SSE-S3 and SSE-KMS objects by itself and answers a GET or HEAD
 * that sends x-amz-server-side-encryption (or the KMS key id) 400 (the API reference, GetObject); so does this one.
 */
function refuseEncryptionOnRead(headers: RequestHeaders): void {
  for (const name of ['x-amz-server-side-encryption', 'x-amz-server-side-encryption-aws-kms-key-id']) {
    const value = headers[name];
    if (value !== undefined) throw invalidArgument(`${name} header is not supported for this operation.`, name, value);
  }
}

/**
 * A version id S3 could have given (32 characters or more of letters, digits and `._-+/=`). S3 refuses another as
 * malformed, 400 InvalidArgument, before looking for the version (a well-formed one it does not have: 404
 * NoSuchVersion).
 */
function assertVersionId(versionId: string, argument: string): void {
  if (!isVersionId(versionId)) throw invalidArgument('Invalid version id specified', argument, versionId);
}

const isVersionId = (versionId: string) => /^[A-Za-z0-9._\-+/=]{32,}$/.test(versionId);

/** If-None-Match: * (create only) and If-Match: <etag> (replace only that version) on a write, as S3 checks them. */
function writeCondition(key: string, headers: RequestHeaders): WriteCondition | undefined {
  const ifNoneMatch = headers['if-none-match'];
  const ifMatch = headers['if-match'];
  if (ifNoneMatch === undefined && ifMatch === undefined) return undefined;
  if (ifNoneMatch !== undefined && ifNoneMatch.trim() !== '*') throw notImplemented('If-None-Match other than *');
  return (current) => {
    if (ifNoneMatch !== undefined && current) throw preconditionFailed('If-None-Match');
    if (ifMatch !== undefined) {
      if (!current) throw noSuchKey(key);
      if (!etagMatches(ifMatch, current.etag)) throw preconditionFailed('If-Match');
    }
  };
}

/**
 * A conditional delete (DeleteObject's If-Match, a DeleteObjects entry's ETag), as S3 checks it: only the object with
 * that ETag (or any, `*`) is deleted; another 412 PreconditionFailed, none 404 NoSuchKey.
 */
function deleteCondition(key: string, ifMatch: string | undefined): WriteCondition | undefined {
  return ifMatch === undefined ? undefined : writeCondition(key, { 'if-match': ifMatch });
}

function checksumResponse(
  checksum: { algorithm: ChecksumAlgorithm; value: string } | undefined,
): Record<string, string> {
  return checksum ? { [checksumHeader(checksum.algorithm)]: checksum.value } : {};
}

function xmlResponse(root: string, inner: string): S3Response {
  return { status: 200, headers: { 'content-type': 'application/xml' }, body: xmlDocument(root, inner) };
}
