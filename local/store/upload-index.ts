import { compareKeys } from './folder-index.ts';

/** What orders an upload in ListMultipartUploads: its bucket, key, when it began, its id. */
export interface UploadHead {
  id: string;
  bucket: string;
  key: string;
  initiated: string;
}

export interface UploadPageOptions {
  prefix: string;
  /** The uploads after this key (and, with uploadIdMarker, those of this key after that upload). */
  keyMarker: string;
  uploadIdMarker: string;
  maxUploads: number;
}

const order = (a: UploadHead, b: UploadHead) =>
  compareKeys(a.bucket, b.bucket) ||
  compareKeys(a.key, b.key) ||
  (a.initiated < b.initiated ? -1 : a.initiated > b.initiated ? 1 : 0) ||
  compareKeys(a.id, b.id);

/**
 * The multipart uploads in progress that the store has read (object-store.ts, listUploads), kept in ListMultipartUploads'
 * order: by bucket, then key, then the time each began. An upload read is put in its place by binary search, one gone
 * taken out of it; a page starts at its marker by binary search and reads its own uploads only (before, every page
 * sorted all uploads and filtered them, O(n log n) for a page of 1,000).
 */
export class UploadIndex<T extends UploadHead> {
  private readonly byId = new Map<string, T>();
  private readonly sorted: T[] = [];

  has(id: string): boolean {
    return this.byId.has(id);
  }

  ids(): IterableIterator<string> {
    return this.byId.keys();
  }

  /** Every upload kept, in no order. */
  all(): IterableIterator<T> {
    return this.byId.values();
  }

  add(upload: T): void {
    if (this.byId.has(upload.id)) return;
    this.byId.set(upload.id, upload);
    this.sorted.splice(
      this.firstAtOrAfter((u) => order(u, upload) >= 0),
      0,
      upload,
    );
  }

  remove(id: string): void {
    const upload = this.byId.get(id);
    if (!upload) return;
    this.byId.delete(id);
    this.sorted.splice(
      this.firstAtOrAfter((u) => order(u, upload) >= 0),
      1,
    );
  }

  /** The bucket's uploads, in order. */
  ofBucket(bucket: string): T[] {
    return this.sorted.slice(
      this.bucketStart(bucket, ''),
      this.firstAtOrAfter((u) => compareKeys(u.bucket, bucket) > 0),
    );
  }

  /**
   * One page of ListMultipartUploads: the bucket's uploads under the prefix after the markers (S3's paging: after
   * key-marker; with upload-id-marker, those of that key after that upload too, or, when it is not one of them, those
   * of that key whose id sorts after it), at most maxUploads; truncated when more follow.
   */
  page(bucket: string, options: UploadPageOptions): { uploads: T[]; truncated: boolean } {
    const { prefix, keyMarker, uploadIdMarker, maxUploads } = options;
    const uploads: T[] = [];
    const inPage = (u: T | undefined) => u !== undefined && u.bucket === bucket && u.key.startsWith(prefix);
    let i = this.bucketStart(bucket, prefix);
    if (keyMarker) {
      const pastMarker = this.bucketStart(bucket, keyMarker, true);
      if (uploadIdMarker) {
        const ofMarker = this.sorted.slice(this.bucketStart(bucket, keyMarker), pastMarker);
        const at = ofMarker.findIndex((u) => u.id === uploadIdMarker);
        for (const u of at >= 0 ? ofMarker.slice(at + 1) : ofMarker.filter((u) => u.id > uploadIdMarker))
          if (inPage(u)) uploads.push(u);
      }
      i = Math.max(i, pastMarker);
    }
    let truncated = false;
    if (uploads.length > maxUploads) {
      uploads.length = maxUploads;
      truncated = true;
    }
    for (; !truncated && inPage(this.sorted[i]); i++) {
      if (uploads.length >= maxUploads) truncated = true;
      else uploads.push(this.sorted[i]!);
    }
    return { uploads, truncated };
  }

  /** The first of the bucket's uploads whose key is `key` or after it (`past`: after every one whose key is `key`). */
  private bucketStart(bucket: string, key: string, past = false): number {
    return this.firstAtOrAfter((u) => {
      const byBucket = compareKeys(u.bucket, bucket);
      if (byBucket !== 0) return byBucket > 0;
      const byKey = compareKeys(u.key, key);
      return past ? byKey > 0 : byKey >= 0;
    });
  }

  /** The first index whose upload satisfies `atOrAfter` (which is false before it and true from it on). */
  private firstAtOrAfter(atOrAfter: (u: T) => boolean): number {
    let lo = 0;
    let hi = this.sorted.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (atOrAfter(this.sorted[mid]!)) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  }
}
