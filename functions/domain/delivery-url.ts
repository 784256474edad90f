/**
 * A delivery URL as it may be recorded or shown outside configuration (docs/security.md, "Delivery URLs outside
 * configuration"): its scheme, host and port, then `/…` for any path or query it has. A URL's credentials can sit in
 * its userinfo (`user:pass@`), in a query value (`?token=…`) or in its path (Slack's `/services/T…/B…/<secret>`,
 * Zapier's `/hooks/catch/<account>/<secret>/`, Discord's `/api/webhooks/<id>/<token>`), and no rule can tell which
 * segment of a path is one, so none of the path leaves configuration: the attempt log, the record's delivery target,
 * errors (execution history, CloudWatch), exports, test deliveries and every operator view carry this form, which says
 * which receiver it is by its origin (and, beside it, its webhook type). Idempotent: a shown URL shows as itself.
 */
export function shownDeliveryUrl(url: string): string {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return '(not a URL)';
  }
  if (!parsed.host) return `${parsed.protocol}…`;
  const rest = parsed.pathname !== '/' || parsed.search !== '' || parsed.hash !== '' ? '/…' : '/';
  return `${parsed.protocol}//${parsed.host}${rest}`;
}
