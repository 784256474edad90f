/**
 * The credentials a webhook carries, as patterns that find them in any log text, however often the text around
 * them was JSON-escaped. On AWS they are the custom data identifiers of the CloudWatch Logs data protection policy
 * on the gateway's log groups (infra/constructs/secret-masking-policy.ts): CloudWatch masks every match when the
 * event is ingested, so the Express execution history — which must hold the execution input, inbound
 * `webhook-signature` included, because API Gateway starts the workflow directly — shows it masked. Locally the
 * execution store applies the same patterns (maskSecrets) to the history it saves.
 *
 * The regexes are written in the subset CloudWatch accepts (at most 200 characters of `[A-Za-z0-9]`,
 * `_ # = @ / ; , -` and space, and `^ $ ? [ ] { } | \ * + .`: no groups), so the same text is a valid JavaScript
 * regex. Base64 `/` may arrive as `\/` or `\\\/` (API Gateway's escapeJavaScript, then JSON inside JSON), so the
 * character class admits backslashes; a match never ends in one, so masking cannot eat the backslash of an escaped
 * quote after an unpadded value and break the JSON of the log event.
 */
export interface SecretPattern {
  /** A CloudWatch custom data identifier name: `[A-Za-z0-9_-]`, at most 128 characters. */
  readonly name: string;
  readonly regex: string;
}

export const SECRET_PATTERNS: readonly SecretPattern[] = [
  // Standard Webhooks signatures: `v1,` + base64 HMAC-SHA256 (44 characters) or `v1a,` + base64 ed25519 (88).
  { name: 'StandardWebhooksSignature', regex: 'v1a?,[A-Za-z0-9+/\\\\]{42,}[A-Za-z0-9+/=]=*' },
  // Standard Webhooks secrets (`whsec_` + base64 of at least 12 bytes): never logged, masked should one ever be.
  { name: 'StandardWebhooksSecret', regex: 'whsec_[A-Za-z0-9+/\\\\]{15,}[A-Za-z0-9+/=]=*' },
];

/** What a match becomes in the local history (CloudWatch shows its own mask characters). */
export const MASK = '****';

/** The characters CloudWatch Logs allows in a custom data identifier's regex. */
export const CLOUDWATCH_REGEX_CHARACTERS = /^[A-Za-z0-9_#=@/;,\- ^$?[\]{}|\\*+.]{1,200}$/;

const compiled = SECRET_PATTERNS.map((p) => new RegExp(p.regex, 'g'));

/** Every signature or secret in `text` replaced by MASK, as the data protection policy does on AWS. */
export function maskSecrets(text: string): string {
  let masked = text;
  for (const pattern of compiled) masked = masked.replace(pattern, MASK);
  return masked;
}
