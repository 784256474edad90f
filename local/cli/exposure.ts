import type { PublicBase } from '../server/config.ts';

/**
 * The start banner's word on who can reach the gateway. The URL it prints is the loopback one (the gateway reaches
 * itself there), so a gateway bound to every interface says so, and warns when nothing proves a caller
 * (docs/security.md: signed requests, API keys); one behind a reverse proxy names its PUBLIC_URL.
 */
export function exposureLines(
  host: string,
  policy: { requireSigned: boolean; apiKeys: boolean },
  publicUrl: PublicBase | null = null,
): string[] {
  const everywhere = host === '0.0.0.0' || host === '::';
  // Behind a reverse proxy (PUBLIC_URL, docs/configuration.md): the address the status URLs it hands out name.
  const proxied = publicUrl
    ? [
        `  public ${publicUrl.base} (PUBLIC_URL): every status URL is under it` +
          (everywhere
            ? ''
            : `; POST /webhook, GET /conversations/{id} and GET /health answer Host ${publicUrl.host} too`),
      ]
    : [];
  if (!everywhere) return proxied;
  const lines = [
    ...proxied,
    `  and on every interface (HOST=${host}): other machines can call POST /webhook and GET /conversations/{id}; the console, the operator endpoints and the helpers answer this machine only`,
  ];
  if (!policy.requireSigned && !policy.apiKeys)
    lines.push(
      '  warning: no request needs a signature or an API key: anyone who reaches this machine can start conversations (set REQUIRE_SIGNED_WEBHOOKS=true, or API_KEYS)',
    );
  return lines;
}
