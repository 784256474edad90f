/**
 * Whether the date of an ISO 8601 date or timestamp (`YYYY-MM-DD…`) exists: a pattern takes any day 01-31 in any month
 * (and month 00-99), and Date.parse rolls 2025-02-31 over to March 3rd, so a value would name a day that never was.
 */
export function isCalendarDate(value: string): boolean {
  const [year, month, day] = value.slice(0, 10).split('-').map(Number) as [number, number, number];
  if (month < 1 || month > 12 || day < 1) return false;
  const leap = year % 4 === 0 && (year % 100 !== 0 || year % 400 === 0);
  const days = month === 2 ? (leap ? 29 : 28) : [4, 6, 9, 11].includes(month) ? 30 : 31;
  return day <= days;
}

/** A timestamp of second 60: date and time to the minute, the fraction, the offset. */
const LEAP_SECOND = /^(\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}):60(?:\.\d+)?(Z|[+-]\d{2}(?::?\d{2})?)$/;

/**
 * A request timestamp as RFC 3339 allows it, in the form the record keeps (docs/contract.md#post-webhook): a
 * lowercase `t` or `z` is written uppercase, and a leap second (`23:59:60Z`, or the same instant in another offset,
 * at the end of a month) as the last millisecond before it (`23:59:59.999Z`), since JavaScript time, and so every
 * reader of the exports, has no second 60. Anything else is returned as it is, for the validator to judge.
 */
export function normalisedTimestamp(value: string): string {
  const upper = value.replace(/^(\d{4}-\d{2}-\d{2})t/, '$1T').replace(/z$/, 'Z');
  const leap = LEAP_SECOND.exec(upper);
  if (!leap) return upper;
  const before = `${leap[1]}:59.999${leap[2]}`;
  const at = new Date(before);
  const endOfMonth =
    !Number.isNaN(at.getTime()) &&
    at.getUTCHours() === 23 &&
    at.getUTCMinutes() === 59 &&
    new Date(at.getTime() + 1).getUTCDate() === 1;
  return endOfMonth ? before : upper;
}

/** How long ago, in one short unit: `45s`, `12m`, `5h`, `3d`. */
export function age(fromIso: string, now = Date.now()): string {
  const s = Math.max(0, Math.round((now - Date.parse(fromIso)) / 1000));
  if (s < 120) return `${s}s`;
  if (s < 7200) return `${Math.round(s / 60)}m`;
  if (s < 172_800) return `${Math.round(s / 3600)}h`;
  return `${Math.round(s / 86_400)}d`;
}

/** A time and how long ago it was, as the CLI and the console say it: `2026-12-03T10:00:00.000Z (12m ago)`. */
export const timeAgo = (iso: string, now = Date.now()) => `${iso} (${age(iso, now)} ago)`;
