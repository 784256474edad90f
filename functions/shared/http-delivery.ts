import http from 'node:http';
import https from 'node:https';
import { type LoggedResponse, loggedBody, loggedResponseHeaders } from '../domain/attempt-log.ts';
import type { DeliveryAttempt } from '../domain/conversation.ts';
import { isHttpStatus, outcomeForStatus, retryAfterMs, timedOutReason } from '../domain/delivery.ts';
import { shownDeliveryUrl } from '../domain/delivery-url.ts';

/** At most this much of a receiver's answer is read (and kept, trimmed, for the attempt record). */
const MAX_RESPONSE_BYTES = 65_536;

export interface PostResult {
  attempt: DeliveryAttempt;
  /** What the receiver answered, as the attempt log keeps it; null when nothing came back. */
  response: LoggedResponse | null;
}

/**
 * node:http rather than fetch: one POST costs a quarter of fetch's CPU (measured, docs/performance.md §2), and
 * Deliver makes one per attempt. As fetch's pool did, a connection to a receiver is kept for the next delivery and
 * closed after 4 s unused (or sooner when the receiver's Keep-Alive header says so); redirects are not followed.
 */
const KEEP_ALIVE = { keepAlive: true, timeout: 4_000 };
const AGENTS: Record<string, http.Agent> = {
  'http:': new http.Agent(KEEP_ALIVE),
  'https:': new https.Agent(KEEP_ALIVE),
};

interface Answer {
  status: number;
  /** Every header, a repeated one joined with ", " (the attempt log keeps the LOGGED_RESPONSE_HEADERS). */
  headers: [string, string][];
  retryAfter: string | null;
  bytes: Buffer;
  /** Why the body stopped before its end (a timeout, a broken connection); null when it was read to its end or cap. */
  cut: string | null;
}

/**
 * POST the body; the answer's status, headers and first MAX_RESPONSE_BYTES. Rejects (the message: why) on a network
 * error or a timeout before the status came; after it, the status is the receiver's answer: a body cut short by the
 * timeout or a broken connection is kept as far as it came (`cut` says why), so a 2xx whose body trickles is
 * delivered, not sent again.
 */
function post(url: string, body: string, headers: Record<string, string>, timeoutMs: number): Promise<Answer> {
  let deadline: ReturnType<typeof setTimeout> | undefined;
  return new Promise<Answer>((resolve, reject) => {
    const target = new URL(url);
    const agent = AGENTS[target.protocol];
    if (!agent) throw new Error(`network error: unsupported protocol ${target.protocol}`);
    // The attempt's deadline, cleared once the POST has its answer (or failed). AbortSignal.timeout's timer could not
    // be cleared: it went off timeoutMs after every delivery, long after its answer, and built its abort event and a
    // DOMException each time (docs/performance.md §2, perf25).
    const timeout = new AbortController();
    const { signal } = timeout;
    deadline = setTimeout(
      () => timeout.abort(new DOMException('The operation was aborted due to timeout', 'TimeoutError')),
      timeoutMs,
    );
    const reason = (error: unknown) => (signal.aborted ? timedOutReason(timeoutMs) : networkReason(error, target.host));
    let answerSoFar: ((cut: string) => void) | null = null;
    const request = (target.protocol === 'https:' ? https : http).request(
      target,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', ...headers, 'content-length': Buffer.byteLength(body) },
        // Node reads 16 KB of headers by default: a receiver answering 2xx with more would be a network error, and
        // sent the delivery again on every retry.
        maxHeaderSize: MAX_RESPONSE_BYTES,
        signal,
      },
      (response) => {
        const chunks: Buffer[] = [];
        let size = 0;
        let capped = false;
        const answer = (cut: string | null) =>
          resolve(answerOf(response, Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES), cut));
        answerSoFar = answer;
        response.on('data', (chunk: Buffer) => {
          chunks.push(chunk);
          size += chunk.length;
          if (size >= MAX_RESPONSE_BYTES && !capped) {
            capped = true; // the rest is not read
            response.destroy();
            answer(null);
          }
        });
        response.on('end', () => answer(null));
        response.on('error', (error) => {
          if (!capped) answer(reason(error));
        });
      },
    );
    // A 101 (Switching Protocols) never reaches the response callback: without an 'upgrade' listener Node drops the
    // connection, and the request settled neither then nor at its deadline, so Deliver waited for its Lambda's (or
    // the local run's) end. The gateway asked for no upgrade: the 101 is the receiver's answer, a status like any
    // other that is no 2xx (permanent), and the connection handed over is closed.
    request.on('upgrade', (response, socket) => {
      socket.destroy();
      resolve(answerOf(response, Buffer.alloc(0), null));
    });
    request.on('error', (error) => {
      if (answerSoFar) return answerSoFar(reason(error));
      const certificate = !signal.aborted && certificateProblem(error) !== null;
      reject(certificate ? new ReceiverCertificateError(reason(error)) : new Error(reason(error)));
    });
    request.end(body);
  }).finally(() => clearTimeout(deadline));
}

/** The receiver's answer: its status, its headers (a repeated one joined with ", ") and the body read. */
function answerOf(response: http.IncomingMessage, bytes: Buffer, cut: string | null): Answer {
  return {
    status: response.statusCode ?? 0,
    headers: Object.entries(response.headers).map(([name, value]) => [name, [value ?? ''].flat().join(', ')]),
    retryAfter: [response.headers['retry-after']].flat()[0] ?? null,
    bytes,
    cut,
  };
}

/**
 * What is wrong with a receiver's certificate, by Node's TLS verification codes, or null when the error is no
 * certificate's. Its operator fixes it, as a 4xx: sending the delivery again changes nothing, so the attempt is
 * permanent (docs/contract.md, "Deliveries") and the delivery is redriven once the certificate is fixed.
 */
const CERTIFICATE_PROBLEMS: Record<string, string> = {
  DEPTH_ZERO_SELF_SIGNED_CERT: 'is self-signed',
  SELF_SIGNED_CERT_IN_CHAIN: 'chains to a self-signed root that no public authority signed',
  UNABLE_TO_VERIFY_LEAF_SIGNATURE:
    'cannot be verified: the server sends no chain to a public authority (its intermediates missing?)',
  UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
    'was issued by an authority this gateway does not trust (or its intermediates are missing)',
  UNABLE_TO_GET_ISSUER_CERT: 'was issued by an authority this gateway does not trust',
  CERT_HAS_EXPIRED: 'has expired',
  CERT_NOT_YET_VALID: 'is not valid yet (its start date is in the future)',
  CERT_REVOKED: 'has been revoked',
  CERT_SIGNATURE_FAILURE: 'has a signature that does not verify',
  ERR_TLS_CERT_ALTNAME_INVALID: 'does not name this host',
};

function certificateProblem(error: unknown): string | null {
  const code = (error as { code?: string }).code;
  return code ? (CERTIFICATE_PROBLEMS[code] ?? null) : null;
}

/** A delivery refused for its receiver's certificate: permanent, its message what to fix. */
class ReceiverCertificateError extends Error {}

function networkReason(error: unknown, host: string): string {
  const e = error as Error & { code?: string; reason?: string; cause?: { code?: string; message?: string } };
  const problem = certificateProblem(error);
  if (problem) {
    // ERR_TLS_CERT_ALTNAME_INVALID's reason names the names the certificate holds.
    const detail = e.code === 'ERR_TLS_CERT_ALTNAME_INVALID' && e.reason ? `: ${e.reason}` : '';
    return `certificate error: the receiver's TLS certificate for ${host} ${problem} (${e.code}${detail}); its operator must serve a valid one, then redrive the delivery`;
  }
  const cause = e.code ?? e.cause?.code ?? e.cause?.message;
  if (cause === 'HPE_HEADER_OVERFLOW') return `network error: ${cause} (the answer's headers are over 64 KB)`;
  return cause ? `network error: ${cause}` : `network error: ${e.message}`;
}

/**
 * Where a 3xx sent the delivery, for its error: redirects are not followed (docs/contract.md, "Deliveries"), so the
 * operator learns from the attempt itself where the receiver has moved (a relative Location read against the URL);
 * and to what a 101 would have switched the connection (no upgrade is asked for, none is made).
 */
function statusNote(status: number, headers: [string, string][], url: string): string {
  if (!isHttpStatus(status))
    return ' (no HTTP status: they are 100–599, so the receiver is broken; permanent, redrive once its operator fixed it)';
  if (status === 101) {
    const upgrade = headers.find(([name]) => name === 'upgrade')?.[1];
    return ` (a switch to ${upgrade ? upgrade.slice(0, 100) : 'another protocol'} the gateway did not ask for, refused)`;
  }
  if (status < 300 || status >= 400) return '';
  const location = headers.find(([name]) => name === 'location')?.[1];
  if (!location) return ' (a redirect without a Location, not followed)';
  return ` (a redirect to ${shownLocation(location, url)}, not followed)`;
}

/**
 * A redirect's Location as it is recorded (its error, the attempt log's response headers): read against the URL, then
 * its origin only, as a delivery URL is (docs/security.md, "Delivery URLs outside configuration"): a Location may carry
 * credentials (`user:pass@`, a token in its query or path) as the delivery URL may.
 */
function shownLocation(location: string, url: string): string {
  try {
    return shownDeliveryUrl(new URL(location, url).href);
  } catch {
    return '(not a URL)';
  }
}

/** One POST. Never throws: every result, including network failures and timeouts, is an attempt record. */
export async function postJson(
  url: string,
  body: string,
  headers: Record<string, string>,
  attemptNumber: number,
  timeoutMs: number,
): Promise<PostResult> {
  const at = new Date();
  const started = performance.now();
  try {
    const { status, headers: answered, retryAfter, bytes, cut } = await post(url, body, headers, timeoutMs);
    const text = bytes.toString('utf8');
    const outcome = outcomeForStatus(status);
    const attempt: DeliveryAttempt = {
      attempt: attemptNumber,
      at: at.toISOString(),
      duration_ms: Math.round(performance.now() - started),
      status_code: status,
      outcome,
      ...(outcome === 'delivered'
        ? {}
        : {
            error: `HTTP ${String(status).padStart(3, '0')}${statusNote(status, answered, url)}${cut ? ` (its body cut short: ${cut})` : ''}${text ? `: ${text.slice(0, 200)}` : ''}`,
          }),
    };
    const retryAfterWait = outcome === 'retryable' ? retryAfterMs(retryAfter, new Date()) : null;
    if (retryAfterWait !== null) attempt.retry_after_ms = retryAfterWait;
    const logged = loggedBody(bytes);
    if (cut) logged.body_truncated = true;
    const kept = loggedResponseHeaders(answered);
    if (kept.location !== undefined) kept.location = shownLocation(kept.location, url);
    return { attempt, response: { status, headers: kept, ...logged } };
  } catch (error) {
    return {
      attempt: {
        attempt: attemptNumber,
        at: at.toISOString(),
        duration_ms: Math.round(performance.now() - started),
        error: (error as Error).message,
        outcome: error instanceof ReceiverCertificateError ? 'permanent' : 'retryable',
      },
      response: null,
    };
  }
}
