import { invalidArgument, malformedXml, S3Error } from './s3-errors.ts';
import { childrenNamed, childText, element, type XmlElement } from './s3-xml.ts';

/**
 * Object tags, as S3 takes them: at most 10, each key 1 to 128 characters and value up to 256, of letters, digits,
 * spaces and `+ - = . _ : / @`, keys unique and not beginning with `aws:`. Given as a PutObjectTagging document or as
 * the x-amz-tagging header of a write (URL-encoded query parameters, `k1=v1&k2=v2`).
 */
export type Tags = Record<string, string>;

const MAX_TAGS = 10;
const TAG_TEXT = /^[\p{L}\p{Z}\p{N}_.:/=+\-@]*$/u;

const invalidTag = (message: string, key: string, value: string) =>
  new S3Error('InvalidTag', 400, message, { TagKey: key, TagValue: value });

function checked(pairs: [string, string][], duplicate: (key: string) => S3Error): Tags | undefined {
  if (pairs.length > MAX_TAGS) throw new S3Error('BadRequest', 400, 'Object tags cannot be greater than 10');
  const keys = new Set<string>();
  for (const [key, value] of pairs) {
    if (keys.has(key)) throw duplicate(key);
    keys.add(key);
    if ([...key].length > 128) throw invalidTag('The TagKey you have provided is too long, max 128', key, value);
    if ([...value].length > 256) throw invalidTag('The TagValue you have provided is too long, max 256', key, value);
    if (key === '' || !TAG_TEXT.test(key)) throw invalidTag('The TagKey you have provided is invalid', key, value);
    if (!TAG_TEXT.test(value)) throw invalidTag('The TagValue you have provided is invalid', key, value);
    if (key.toLowerCase().startsWith('aws:')) throw invalidTag('Your TagKey cannot be prefixed with aws:', key, value);
  }
  return pairs.length ? Object.fromEntries(pairs) : undefined; // own properties, even `__proto__`
}

/** The tags of an x-amz-tagging header (undefined when absent or empty). */
export function tagsFromHeader(value: string | undefined): Tags | undefined {
  if (value === undefined) return undefined;
  return checked([...new URLSearchParams(value)], () =>
    invalidArgument(
      "The header 'x-amz-tagging' shall be encoded as UTF-8 then URLEncoded URL query parameters without tag name duplicates.",
      'x-amz-tagging',
      value,
    ),
  );
}

/** The tags of a PutObjectTagging document (`<Tagging><TagSet><Tag><Key/><Value/></Tag>…`). */
export function tagsFromXml(document: XmlElement): Tags | undefined {
  const tagSet = document.name === 'Tagging' ? childrenNamed(document, 'TagSet') : [];
  if (tagSet.length !== 1) throw malformedXml();
  const pairs = childrenNamed(tagSet[0]!, 'Tag').map((tag): [string, string] => {
    const key = childText(tag, 'Key');
    const value = childText(tag, 'Value');
    if (key === undefined || value === undefined) throw malformedXml();
    return [key, value];
  });
  return checked(pairs, (key) => invalidTag('Cannot provide multiple Tags with the same key', key, ''));
}

/** GetObjectTagging's TagSet. */
export const tagSetXml = (tags: Tags | undefined) =>
  `<TagSet>${Object.entries(tags ?? {})
    .map(([key, value]) => `<Tag>${element('Key', key)}${element('Value', value)}</Tag>`)
    .join('')}</TagSet>`;
