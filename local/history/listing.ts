/**
 * The filtered listing of the local histories, newest first, one page at a time: what `conversations list` prints and
 * the console's list and its JSON show (docs/operations.md, "Runbook"). What the filters look at comes from the
 * summary index; only the conversations that match are read in full.
 */

import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { isoInstant } from '../../functions/domain/named-queries.ts';
import type { ExecutionStore } from '../store/execution-store.ts';
import {
  type ConversationFilter,
  type FilterableConversation,
  FilterError,
  idTimeMs,
  matchesFilter,
  mayMatch,
} from './conversation-filters.ts';
import { type ConversationSummary, summarize } from './conversations.ts';
import { LISTING_LOCK_WAIT_MS, type SummaryIndex } from './summary-index.ts';

/** Where a page ended: the last row shown (received_at, conversation_id); the next page is of the rows after it. */
export interface ListCursor {
  received_at: string;
  conversation_id: string;
}

/** The cursor as the next page's `cursor` value: `<received_at>,<conversation_id>`. */
export const cursorOf = (row: ListCursor) => `${row.received_at},${row.conversation_id}`;

/** A `cursor` value (cursorOf), or FilterError. */
export function parseCursor(value: string): ListCursor {
  const [received_at = '', conversation_id = '', ...rest] = value.split(',');
  if (rest.length > 0 || Number.isNaN(isoInstant(received_at)) || !isConversationId(conversation_id))
    throw new FilterError(
      `cursor takes the next_cursor of the page before (<received_at>,<conversation_id>); got "${value}"`,
    );
  return { received_at, conversation_id };
}

/** The row comes after the cursor in the list's order (newest first: received later first, then by id). */
export function isAfter(row: FilterableConversation, cursor: ListCursor | null): boolean {
  if (cursor === null) return true;
  return (
    row.received_at < cursor.received_at ||
    (row.received_at === cursor.received_at && row.conversation_id < cursor.conversation_id)
  );
}

/** What the id alone says: received no later than the cursor's second (an id carries the second it was received). */
function mayBeAfter(conversationId: string, cursor: ListCursor | null): boolean {
  if (cursor === null) return true;
  const t = idTimeMs(conversationId);
  return Number.isNaN(t) || t <= Date.parse(cursor.received_at);
}

export interface Listing {
  /** Every row found to match (the newest `limit` and those of their second, or with a thread all), unsorted. */
  rows: ConversationSummary[];
  /** The candidates left unread once `limit` rows matched (older than every row found: they may match). */
  unread: number;
  /**
   * How many of those match, when the summary index answers each without reading a history and they are at most
   * MAX_COUNTED; else null (they may match).
   */
  unreadMatching: number | null;
  /** The conversations met whose every history is damaged: nothing of them can be read, so they are left out. */
  damaged: string[];
}

/**
 * Told after each conversation a listing looked at: how many of its candidates it looked at so far, of how many, and
 * of how many of them it read the histories to fill the summary index (an index being built, or an earlier version's
 * entries without the request's keys, which a first `--key` fills).
 */
export type ListingProgress = (progress: { looked: number; candidates: number; read: number }) => void;

/** How many conversations a listing looks up at once, ahead of the one it is at. */
const LOOK_AHEAD = 32;

/** At most this many unread candidates are looked up in the index (a stat or two each) to count those that match. */
const MAX_COUNTED = 1_000;

/** What the summary index answers of one conversation (SummaryIndex.rowOf). */
type RowLookup = Awaited<ReturnType<SummaryIndex['rowOf']>>;

/**
 * The conversations of `store` that match `filter` and come after `cursor`, read newest first by id (ids start with
 * the UTC second received): once `limit` rows match, an id of an earlier second cannot come before them, so the rest is
 * left unread. A long history lists in the time of its newest conversations, not of all of them. A thread is listed
 * by turn, so it reads every conversation.
 */
export async function listConversations(
  store: ExecutionStore,
  index: SummaryIndex,
  filter: ConversationFilter,
  limit: number,
  cursor: ListCursor | null = null,
  onProgress?: ListingProgress,
): Promise<Listing> {
  await index.refresh();
  const rows: ConversationSummary[] = [];
  let read = 0;
  const damaged: string[] = [];
  const ids = (await store.conversationIds()).sort().reverse();
  let unread = 0;
  let unreadMatching: number | null = null;
  // The second of the id with which `limit` rows matched: the newest `limit` are of that second or later.
  let filledAt: number | null = null;
  // An id received outside the range, of another --source, another --id, or before the page's cursor: not read.
  const candidates = ids.filter((id) => mayMatch(id, filter) && mayBeAfter(id, cursor));
  // A few are looked up ahead in the index (a stat each), so that the disk is not waited for one folder at a time; the
  // histories of those the index does not know are read ahead too, but only of conversations the listing is sure to
  // reach (fewer than `limit` could match before them): a first listing that builds the index read them one at a time
  // (165 s at 54,000), and none is read that the listing would not read.
  const lookups = new Map<number, { found: Promise<RowLookup | null>; full: boolean }>();
  const lookup = (j: number, full: boolean) => {
    let ahead = lookups.get(j);
    if (!ahead || (full && !ahead.full)) {
      const id = candidates[j]!;
      const found: Promise<RowLookup | null> = ahead
        ? ahead.found.then((known) => known ?? index.rowOf(id))
        : full
          ? index.rowOf(id)
          : index.rowOf(id, true);
      found.catch(() => {}); // one not awaited (after the listing stopped) fails nothing
      ahead = { found, full };
      lookups.set(j, ahead);
    }
    return ahead.found;
  };
  // How many candidates from `from` on match, from the index alone (null: one it does not know, or whose keys a --key
  // needs it does not hold), LOOK_AHEAD at a time.
  const countMatching = async (from: number): Promise<number | null> => {
    let matching = 0;
    for (let start = from; start < candidates.length; start += LOOK_AHEAD) {
      const end = Math.min(candidates.length, start + LOOK_AHEAD);
      const found = await Promise.all(
        Array.from({ length: end - start }, (_, k) => lookup(start + k, false).catch(() => null)),
      );
      for (const known of found) {
        if (!known) return null;
        const { row } = known;
        if (row && filter.key !== null && row.webhook_id === undefined) return null;
        if (row && matchesFilter(row, filter) && isAfter(row, cursor)) matching++;
      }
    }
    return matching;
  };
  for (const [i, id] of candidates.entries()) {
    if (filledAt !== null && idTimeMs(id) < filledAt) {
      unread = candidates.length - i;
      if (unread <= MAX_COUNTED) unreadMatching = await countMatching(i);
      break;
    }
    for (let j = i + 1; j < Math.min(candidates.length, i + LOOK_AHEAD); j++)
      lookup(j, filter.thread !== null || rows.length + (j - i) < limit);
    const { row, summary: known, executions } = (await lookup(i, false)) ?? (await index.rowOf(id));
    lookups.delete(i);
    if (executions) read++;
    // No row: gone meanwhile, or every history of it damaged (rare: looked at again to say which).
    if (!row && (await store.executionsAndDamaged(id)).damaged.length > 0) damaged.push(id);
    if (row && matchesFilter(row, filter) && isAfter(row, cursor)) {
      // Its whole row from the index when it holds it: no history is read (else the index keeps it, unless damaged).
      let summary = known ?? (executions && summarize(id, executions));
      if (!summary && !executions) {
        const histories = await store.executionsChecked(id);
        // Filling an entry of an earlier version (no request keys), not reading a question too long to keep.
        if (row.webhook_id === undefined) read++;
        summary = summarize(id, histories.executions);
        if (summary && histories.clean) await index.keepListed(id, summary);
      }
      if (summary && matchesFilter(summary, filter) && isAfter(summary, cursor)) rows.push(summary);
    }
    onProgress?.({ looked: i + 1, candidates: candidates.length, read });
    if (filledAt === null && filter.thread === null && rows.length >= limit) filledAt = idTimeMs(id);
  }
  // Its lock not waited on past LISTING_LOCK_WAIT_MS (another process holds it): the rows are answered, the index is
  // written later.
  await index.save({ until: Date.now() + LISTING_LOCK_WAIT_MS });
  return { rows, unread, unreadMatching, damaged };
}
