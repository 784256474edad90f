import type { DeliveryAttempt } from '../domain/conversation.ts';
import { outcomeForStatus, retryAfterMs } from '../domain/delivery.ts';

/** At most this much of a receiver's answer is read (and kept, trimmed, for the attempt record). */
const MAX_RESPONSE_BYTES = 65_536;

export interface PostResult {
  attempt: DeliveryAttempt;
}

async function readCapped(response: Response): Promise<string> {
  if (!response.body) return '';
  const reader = response.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (size < MAX_RESPONSE_BYTES) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
  }
  await reader.cancel().catch(() => undefined);
  return Buffer.concat(chunks).subarray(0, MAX_RESPONSE_BYTES).toString('utf8');
}

function networkReason(error: unknown, timeoutMs: number): string {
  const e = error as Error & { cause?: { code?: string; message?: string } };
  if (e.name === 'TimeoutError' || e.name === 'AbortError') return `timed out after ${timeoutMs} ms`;
  const cause = e.cause?.code ?? e.cause?.message;
  return cause ? `network error: ${cause}` : `network error: ${e.message}`;
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
    const response = await fetch(url, {
      method: 'POST',
      body,
      headers: { 'content-type': 'application/json', ...headers },
      redirect: 'manual',
      signal: AbortSignal.timeout(timeoutMs),
    });
    const text = await readCapped(response);
    const outcome = outcomeForStatus(response.status);
    const attempt: DeliveryAttempt = {
      attempt: attemptNumber,
      at: at.toISOString(),
      duration_ms: Math.round(performance.now() - started),
      status_code: response.status,
      outcome,
      ...(outcome === 'delivered' ? {} : { error: `HTTP ${response.status}${text ? `: ${text.slice(0, 200)}` : ''}` }),
    };
    const retryAfter = outcome === 'retryable' ? retryAfterMs(response.headers.get('retry-after'), new Date()) : null;
    if (retryAfter !== null) attempt.retry_after_ms = retryAfter;
    return { attempt };
  } catch (error) {
    return {
      attempt: {
        attempt: attemptNumber,
        at: at.toISOString(),
        duration_ms: Math.round(performance.now() - started),
        error: networkReason(error, timeoutMs),
        outcome: 'retryable',
      },
    };
  }
}
