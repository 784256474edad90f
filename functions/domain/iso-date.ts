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
