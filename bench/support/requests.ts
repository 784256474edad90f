/**
 * Request bodies of an exact byte size that the Validate stage accepts.
 *
 * The request schema caps the content a request can carry: `query` ≤ 20,000 characters and `metadata` ≤ 16 KiB
 * as JSON. With 3-byte UTF-8 characters the query can hold ~60 KB, so the largest accepted *content* is ~76 KB.
 * Beyond that a body can only grow with insignificant JSON whitespace: the 250 KiB case is the maximal content
 * plus whitespace. It exercises everything that handles the raw body (HTTP read, the 256 KiB input check, the
 * execution input, Validate's input, the Express log events that carry it) while the record after Validate
 * stays at ~76 KB.
 */
import { MAX_METADATA_BYTES, MAX_QUERY_LENGTH } from '../../functions/domain/request.ts';

export const REQUEST_SIZES = { '1KB': 1024, '64KB': 65_536, '250KB': 256_000 } as const;
export type RequestSizeName = keyof typeof REQUEST_SIZES;

const LEAD = 'What are the top 5 deals closing this quarter? ';
const ASCII_FILLER = 'Please include the pipeline stage, owner, amount and close date for each one. ';
// Common CJK characters: 1 UTF-16 unit (counts 1 toward the 20,000-character limit), 3 bytes in UTF-8.
const CJK = '数据分析报告季度销售管道机会预测客户线索转化率平均趋势';

function repeatTo(unit: string, length: number): string {
  return unit.repeat(Math.ceil(length / unit.length)).slice(0, length);
}

export interface SizedRequest {
  body: string;
  bytes: number;
  /** Bytes of content the record carries after Validate (query + metadata as JSON). */
  content_bytes: number;
  /** Bytes of insignificant whitespace added to reach the size. */
  padding_bytes: number;
}

export function makeRequest(targetBytes: number, sourceProcess = 'bench'): SizedRequest {
  const base = { source_system: 'bench_system', source_process: sourceProcess, timestamp: '2025-08-13T10:30:45Z' };
  const build = (query: string, metadata: Record<string, string>, pad = 0) => {
    const json = JSON.stringify({ query, ...base, metadata });
    return pad > 0 ? `${json.slice(0, -1)}${' '.repeat(pad)}}` : json;
  };
  const size = (s: string) => Buffer.byteLength(s);
  const emptySize = size(build(LEAD, {}));
  if (targetBytes < emptySize) throw new Error(`a request needs at least ${emptySize} bytes`);
  let query = LEAD;
  let metadata: Record<string, string> = {};
  // 1. ASCII query (1 byte per character) up to what fits, at most 20,000 characters.
  let room = targetBytes - size(build(query, metadata));
  if (room > 0) query += repeatTo(ASCII_FILLER, Math.min(room, MAX_QUERY_LENGTH - LEAD.length));
  room = targetBytes - size(build(query, metadata));
  // 2. Still short: the query in 3-byte characters (each swap of an ASCII character for a CJK one adds 2 bytes).
  if (room > 0) {
    const tail = query.length - LEAD.length;
    const swaps = Math.min(tail, Math.floor(room / 2));
    query = LEAD + repeatTo(CJK, swaps) + query.slice(LEAD.length + swaps);
    room = targetBytes - size(build(query, metadata));
  }
  // 3. Still short: metadata (ASCII), at most 16 KiB as JSON.
  if (room > 0) {
    const overhead = size(build(query, { note: '' })) - size(build(query, {}));
    const n = Math.min(room - overhead, MAX_METADATA_BYTES - size(JSON.stringify({ note: '' })));
    if (n > 0) metadata = { note: repeatTo('crm-context ', n) };
    room = targetBytes - size(build(query, metadata));
  }
  const contentBytes = size(query) + size(JSON.stringify(metadata));
  // 4. Whatever is left: JSON whitespace before the closing brace.
  const pad = Math.max(0, room);
  const body = build(query, metadata, pad);
  return { body, bytes: size(body), content_bytes: contentBytes, padding_bytes: pad };
}
