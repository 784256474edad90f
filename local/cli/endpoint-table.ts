/** The receivers as `endpoints` prints them, locally and with --aws (local/cli/endpoints.ts, aws/endpoints.ts). */
import type { WebhookType } from '../../functions/domain/conversation.ts';
import {
  type EndpointView,
  retryAfterNote,
  rotationNote,
  signingLabel,
  stateSince,
} from '../../functions/domain/endpoints.ts';
import { timeAgo } from '../../functions/domain/iso-date.ts';
import { rotatedSecrets } from '../../functions/domain/signatures.ts';
import type { EndpointChange } from '../../functions/shared/endpoint-store.ts';
import { CliError, note, out, outJson } from './shared.ts';
import { cell, formatTable } from './table.ts';

/** What `set` changes: the store's part and the secrets' part. */
export interface EndpointEdit {
  change: EndpointChange;
  secret?: string;
  dropPreviousSecret: boolean;
}

const when = (iso: string | null) => (iso ? timeAgo(iso) : '-');

/** A paused or disabled receiver's state says since when (`paused_at`, `disabled_at` in --json). */
function stateOf(v: EndpointView): string {
  const since = stateSince(v);
  return since ? `${v.status} since ${when(since)}` : v.status;
}

/** The type's delivery secrets after `edit` (rotatedSecrets); its refusal (a rotation under way) is the command's. */
export function editedSecrets(type: WebhookType, current: readonly string[], edit: EndpointEdit): string[] {
  try {
    return rotatedSecrets(current, edit.secret, edit.dropPreviousSecret);
  } catch (error) {
    throw new CliError(`${type}: ${(error as Error).message}`);
  }
}

/**
 * The table (with how each receiver's deliveries are signed, and a line per rotation under way and per receiver its
 * Retry-After holds) and its footer, or
 * with --json the views alone on stdout and the footer on stderr (as `deliveries list
 * --aws --json` says its counts): what was not counted or not shown is still said.
 */
export function printEndpoints(views: EndpointView[], json: boolean, footer?: string): void {
  if (json) {
    outJson(views);
    if (footer) note(footer);
    return;
  }
  out(
    formatTable(
      ['type', 'state', 'signing', 'url', 'rate', 'last_success', 'failures', 'failing_since', 'queued', 'last_error'],
      views.map((v) => [
        v.webhook_type,
        stateOf(v),
        signingLabel(v),
        v.url ? `${v.url}${v.url_source === 'configured' ? '' : ' (deployed)'}` : '(none)',
        v.rate_per_second === null ? '-' : `${v.rate_per_second}/s`,
        when(v.last_success_at),
        v.consecutive_failures,
        v.failing_since ?? '-',
        v.queued,
        cell(v.last_error, 60),
      ]),
    ),
  );
  // A rotation under way: since when, and what ends it (an operator easily forgets the old secret); a receiver whose
  // Retry-After holds its type: until when.
  const now = new Date();
  for (const v of views) {
    const rotation = rotationNote(v, now);
    if (rotation) out(`${v.webhook_type}: ${rotation.text}`);
    if (v.retry_after_until) out(retryAfterNote(v.webhook_type, v.retry_after_until, now));
  }
  if (footer) out(footer);
}
