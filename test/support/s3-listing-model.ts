/** S3's key order: UTF-8 bytes. */
export const byBytes = (a: string, b: string) => Buffer.compare(Buffer.from(a), Buffer.from(b));

export type ListedItem = { key: string } | { prefix: string };

/**
 * What S3 lists of `keys`, naively: every key in UTF-8 order, those under the prefix, each holding the delimiter after
 * it rolled up into its common prefix (once), those after `after` (a StartAfter, token or marker) kept. The listing
 * tests compare every page of the embedded S3's with it.
 */
export function listingModel(keys: Iterable<string>, prefix: string, delimiter: string, after: string): ListedItem[] {
  const items: ListedItem[] = [];
  let lastPrefix: string | undefined;
  for (const key of [...keys].sort(byBytes)) {
    if (!key.startsWith(prefix)) continue;
    const at = delimiter ? key.indexOf(delimiter, prefix.length) : -1;
    if (at >= 0) {
      const common = key.slice(0, at + delimiter.length);
      if (common !== lastPrefix && byBytes(common, after) > 0) items.push({ prefix: common });
      lastPrefix = common;
    } else if (byBytes(key, after) > 0) {
      items.push({ key });
    }
  }
  return items;
}
