import { malformedXml } from './s3-errors.ts';

/**
 * The XML of the S3 REST API: documents written as strings (the answers are small and flat), and a minimal reader
 * for the two request bodies the subset needs (DeleteObjects and CompleteMultipartUpload). The reader refuses DTDs,
 * so no entity can expand.
 */
const S3_NAMESPACE = 'http://s3.amazonaws.com/doc/2006-03-01/';

const ESCAPES: Record<string, string> = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&apos;' };

/** Text or attribute content; control characters as character references, so a key with a CR survives parsing. */
function escapeXml(value: string): string {
  return value.replace(
    // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters must become character references
    /[&<>"'\u0000-\u001f\u007f]/g,
    (c) => ESCAPES[c] ?? `&#x${c.charCodeAt(0).toString(16).toUpperCase()};`,
  );
}

/** `<name>value</name>`; nothing when the value is undefined. */
export function element(name: string, value: string | number | boolean | undefined): string {
  return value === undefined ? '' : `<${name}>${escapeXml(String(value))}</${name}>`;
}

export function xmlDocument(root: string, inner: string, namespace = true): Buffer {
  return Buffer.from(
    `<?xml version="1.0" encoding="UTF-8"?>\n<${root}${namespace ? ` xmlns="${S3_NAMESPACE}"` : ''}>${inner}</${root}>`,
  );
}

export interface XmlElement {
  /** Local name (a namespace prefix is dropped). */
  name: string;
  children: XmlElement[];
  text: string;
}

const ENTITIES: Record<string, string> = { lt: '<', gt: '>', amp: '&', quot: '"', apos: "'" };

function decodeEntities(text: string): string {
  return text.replace(/&(#x[0-9a-fA-F]+|#[0-9]+|[a-z]+);/g, (_whole, ref: string) => {
    if (ref.startsWith('#x')) return String.fromCodePoint(Number.parseInt(ref.slice(2), 16));
    if (ref.startsWith('#')) return String.fromCodePoint(Number.parseInt(ref.slice(1), 10));
    const named = ENTITIES[ref];
    if (named === undefined) throw malformedXml();
    return named;
  });
}

/** Parse one XML document into elements and their text; anything not well-formed is MalformedXML. */
export function parseXml(source: string): XmlElement {
  const stack: XmlElement[] = [{ name: '#document', children: [], text: '' }];
  let i = 0;
  const past = (token: string, from: number) => {
    const at = source.indexOf(token, from);
    if (at < 0) throw malformedXml();
    return at + token.length;
  };
  try {
    while (i < source.length) {
      const lt = source.indexOf('<', i);
      const text = source.slice(i, lt < 0 ? source.length : lt);
      if (text.trim()) {
        if (stack.length === 1) throw malformedXml();
        stack.at(-1)!.text += decodeEntities(text);
      }
      if (lt < 0) break;
      if (source.startsWith('<?', lt)) {
        i = past('?>', lt);
      } else if (source.startsWith('<!--', lt)) {
        i = past('-->', lt);
      } else if (source.startsWith('<![CDATA[', lt)) {
        i = past(']]>', lt);
        if (stack.length === 1) throw malformedXml();
        stack.at(-1)!.text += source.slice(lt + 9, i - 3);
      } else if (source.startsWith('<!', lt)) {
        throw malformedXml(); // DOCTYPE and declarations: never needed by S3, and the door to entity expansion
      } else {
        const gt = past('>', lt) - 1;
        const tag = source.slice(lt + 1, gt);
        if (tag.startsWith('/')) {
          const name = tag
            .slice(1)
            .trim()
            .replace(/^[^:]*:/, '');
          const open = stack.pop();
          if (!open || open.name !== name || stack.length === 0) throw malformedXml();
        } else {
          const selfClosing = tag.endsWith('/');
          const m = /^([A-Za-z_][\w.:-]*)/.exec(tag);
          if (!m) throw malformedXml();
          const node: XmlElement = { name: m[1]!.replace(/^[^:]*:/, ''), children: [], text: '' };
          if (stack.length === 1 && stack[0]!.children.length > 0) throw malformedXml();
          stack.at(-1)!.children.push(node);
          if (!selfClosing) stack.push(node);
        }
        i = gt + 1;
      }
    }
  } catch (error) {
    if (error instanceof RangeError) throw malformedXml(); // a character reference out of range
    throw error;
  }
  const root = stack[0]!.children[0];
  if (stack.length !== 1 || !root) throw malformedXml();
  return root;
}

export const childrenNamed = (node: XmlElement, name: string) => node.children.filter((c) => c.name === name);
export const childText = (node: XmlElement, name: string) => node.children.find((c) => c.name === name)?.text;
