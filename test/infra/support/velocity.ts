import { render } from 'velocityjs';

/**
 * Renders API Gateway mapping templates with velocityjs plus the parts of API Gateway's Java/Velocity runtime
 * the templates use: `$util.escapeJavaScript` (Apache Commons Lang 2 rules: `'` → `\'`, `/` → `\/`, non-ASCII
 * → `\uXXXX`), Java string methods (`length()`, `contains()`, `replaceAll()` with a regex) and list `contains()`.
 * It checks the templates' logic; it is not API Gateway itself (whitespace handling, for one, may differ).
 */

/** org.apache.commons.lang.StringEscapeUtils.escapeJavaScript (2.6). */
export function escapeJavaScript(value: unknown): string {
  if (value === null || value === undefined) return '';
  const s = String(value);
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const code = s.charCodeAt(i);
    const ch = s[i] as string;
    if (code > 0x7f) out += `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
    else if (code < 32) {
      const named: Record<number, string> = { 8: '\\b', 9: '\\t', 10: '\\n', 12: '\\f', 13: '\\r' };
      out += named[code] ?? `\\u${code.toString(16).toUpperCase().padStart(4, '0')}`;
    } else if (ch === "'") out += "\\'";
    else if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '/') out += '\\/';
    else out += ch;
  }
  return out;
}

const javaMethods = [
  {
    uid: 'java-string-length',
    match: ({ property, context }: { property: string; context: unknown }) =>
      property === 'length' && typeof context === 'string',
    resolve: ({ context }: { context: string }) => context.length,
  },
  {
    uid: 'java-contains',
    match: ({ property, context }: { property: string; context: unknown }) =>
      property === 'contains' && (typeof context === 'string' || Array.isArray(context)),
    resolve: ({ context, params }: { context: string | unknown[]; params: unknown[] }) =>
      typeof context === 'string' ? context.includes(String(params[0])) : context.includes(params[0]),
  },
  {
    uid: 'java-replace-all',
    match: ({ property, context }: { property: string; context: unknown }) =>
      property === 'replaceAll' && typeof context === 'string',
    resolve: ({ context, params }: { context: string; params: unknown[] }) =>
      context.replace(new RegExp(String(params[0]), 'g'), () => String(params[1])),
  },
];

function jsonPath(document: unknown, path: string): unknown {
  if (!path.startsWith('$.')) throw new Error(`unsupported path ${path}`);
  let value: unknown = document;
  for (const key of path.slice(2).split('.')) {
    value = value && typeof value === 'object' ? (value as Record<string, unknown>)[key] : undefined;
  }
  // API Gateway returns null for a missing path; `$!ref` renders it empty. velocityjs does that for undefined.
  if (value === undefined || value === null) return undefined;
  return typeof value === 'object' ? JSON.stringify(value) : value;
}

export interface RequestContext {
  body: string;
  headers?: Record<string, string>;
  requestId?: string;
  sourceIp?: string;
  /** $context.identity.apiKeyId: the id of the API key API Gateway accepted (empty without one). */
  apiKeyId?: string;
  /** Epoch milliseconds of the request. */
  receivedAtMs?: number;
  stage?: string;
  /** $context.domainName (DOMAIN_NAME, the execute-api domain, by default; a custom domain name otherwise). */
  domainName?: string;
  /** $context.path: the path the caller reached (`/<stage>/webhook` on the execute-api domain by default). */
  path?: string;
  /** $context.resourcePath (`/webhook` by default). */
  resourcePath?: string;
}

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** $context.requestTime as API Gateway writes it: CLF, `dd/MMM/yyyy:HH:mm:ss +0000`. */
function clfTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${p(d.getUTCDate())}/${MONTHS[d.getUTCMonth()]}/${d.getUTCFullYear()}:${p(d.getUTCHours())}:${p(d.getUTCMinutes())}:${p(d.getUTCSeconds())} +0000`;
}

export interface Rendered {
  output: string;
  /** $context.responseOverride.status when the template set it. */
  status: number | undefined;
  /** $context.responseOverride.header.<name> the template set. */
  headers: Record<string, string>;
}

/** $context.domainName of the rendered requests. */
export const DOMAIN_NAME = 'a1b2c3d4e5.execute-api.eu-west-1.amazonaws.com';

function renderWith(template: string, input: Record<string, unknown>, request: RequestContext): Rendered {
  const at = request.receivedAtMs ?? Date.UTC(2025, 7, 13, 10, 30, 45, 123);
  const context = {
    requestId: request.requestId ?? 'c0ffee00-1234-4abc-8def-0123456789ab',
    requestTime: clfTime(at),
    requestTimeEpoch: at,
    identity: { sourceIp: request.sourceIp ?? '203.0.113.7', apiKeyId: request.apiKeyId ?? '' },
    stage: request.stage ?? 'prod',
    domainName: request.domainName ?? DOMAIN_NAME,
    path: request.path ?? `/${request.stage ?? 'prod'}/webhook`,
    resourcePath: request.resourcePath ?? '/webhook',
    responseOverride: { header: {} } as { status?: number; header: Record<string, string> },
  };
  const util = { escapeJavaScript, parseJson: (text: string) => JSON.parse(text) };
  const output = render(template, { input, context, util }, undefined, {
    customMethodHandlers: javaMethods as never,
  });
  return { output, status: context.responseOverride.status, headers: context.responseOverride.header };
}

/** Render an integration request template for one incoming request. */
export function renderRequest(template: string, request: RequestContext): Rendered {
  const input = {
    body: request.body,
    params: () => ({ header: { ...(request.headers ?? {}) }, path: {}, querystring: {} }),
    path: (p: string) => jsonPath(JSON.parse(request.body), p),
  };
  return renderWith(template, input, request);
}

/** Render an integration response template for one integration (Step Functions) response body. */
export function renderResponse(
  template: string,
  integrationResponse: unknown,
  request: Omit<RequestContext, 'body'> = {},
): Rendered {
  const text = JSON.stringify(integrationResponse);
  const input = {
    body: text,
    params: () => ({ header: {}, path: {}, querystring: {} }),
    path: (p: string) => jsonPath(integrationResponse, p),
  };
  return renderWith(template, input, { ...request, body: text });
}
