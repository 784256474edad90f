import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { statusSigningPayload } from '../../functions/domain/conversation-status.ts';
import { KEY_PATTERN } from '../../functions/domain/idempotency.ts';
import { checkSecret, type SignedHeaders, signOutbound } from '../../functions/domain/signatures.ts';
import { CliError, note } from './shared.ts';
import { printable } from './table.ts';

/**
 * `webhook-gateway sign --secret whsec_… (--data JSON | --file body.json | --status CONVERSATION_ID) [--id ID]
 * [--json]`: the Standard Webhooks headers a sender puts on one request, as curl arguments (or JSON). The body must
 * then be sent byte for byte; `--status` signs `GET /conversations/<id>` (docs/security.md, "Reading a status").
 */
export async function sign(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      secret: { type: 'string' },
      data: { type: 'string' },
      file: { type: 'string' },
      status: { type: 'string' },
      id: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  // `sign '{"query": …}'` was refused in node:util's words ("Unexpected argument … does not take positional
  // arguments"), which did not say where the body goes.
  if (positionals.length > 0)
    throw new CliError(
      `sign takes no arguments, got "${printable(positionals.join(' '))}": the body you will send goes in --data JSON or --file PATH (or sign a status read with --status CONVERSATION_ID)`,
    );
  const secret = values.secret ?? process.env.WEBHOOK_SECRET;
  if (!secret) throw new CliError('sign needs --secret whsec_… (or WEBHOOK_SECRET)');
  // As the gateway takes an inbound secret: another would sign what no gateway could check (or fail inside the library).
  try {
    checkSecret(secret, values.secret !== undefined ? '--secret' : 'WEBHOOK_SECRET');
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  const given = [values.data, values.file, values.status].filter((v) => v !== undefined).length;
  if (given !== 1)
    throw new CliError(
      'sign needs exactly one of --data JSON or --file PATH (the exact body you will send), or --status CONVERSATION_ID',
    );
  // The gateway refuses any other webhook-id (400), and one with a space would split the printed curl arguments.
  if (values.id !== undefined && !KEY_PATTERN.test(values.id))
    throw new CliError(
      `--id must be 1 to 255 visible ASCII characters (no spaces), as the gateway takes a webhook-id; got "${values.id}"`,
    );
  // The status route answers 404 to any other id before it looks at a signature: a typo would sign in vain.
  if (values.status !== undefined && !isConversationId(values.status))
    throw new CliError(
      `--status takes a conversation id (webhook_<YYYYMMDD>_<HHMMSS>_<source>_<process>_<suffix>, as the 202 gave it); got "${values.status}"`,
    );
  const body =
    values.status !== undefined
      ? statusSigningPayload(values.status)
      : (values.data ?? utf8Body(values.file!, await readBody(values.file!)));
  // curl's -d @file (the form most try first) drops a file's CR and LF, so what it sends is not what was signed.
  if (values.file !== undefined && /[\r\n]/.test(body))
    note(
      `${values.file} has line breaks: send it with curl --data-binary @${values.file} (curl -d @${values.file} drops them, and the signature would not match what it sends)`,
    );
  // Signed all the same (it may be meant), but the gateway answers such a body 400 INVALID_JSON, not the signature.
  if (values.status === undefined && !isJson(body))
    note(
      `${values.file ?? '--data'} is not JSON: the gateway answers it 400 INVALID_JSON whatever its signature (signed as given)`,
    );
  let headers: SignedHeaders;
  try {
    headers = signOutbound(secret, values.id ?? `msg_${randomUUID()}`, new Date(), body);
  } catch (error) {
    throw new CliError(`could not sign: ${(error as Error).message}`);
  }
  process.stdout.write(
    values.json
      ? `${JSON.stringify(headers, null, 2)}\n`
      : `${Object.entries(headers)
          .map(([name, value]) => `-H ${name}:${value}`)
          .join(' ')}\n`,
  );
  return 0;
}

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}

/** The body file's bytes; a file that cannot be read is named with the reason, not as a bare system error. */
async function readBody(file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    const why =
      e.code === 'ENOENT'
        ? 'no such file'
        : e.code === 'EISDIR'
          ? 'it is a folder'
          : e.code === 'EACCES'
            ? 'permission denied'
            : e.message;
    throw new CliError(`--file ${file} cannot be read (${why}): give the file holding the exact body you will send`);
  }
}

/**
 * A body file's text. The gateway reads a body as UTF-8, bytes that are not UTF-8 as U+FFFD
 * (docs/contract.md#post-webhook), so a signature over such a file's bytes never matches, and one over its decoded
 * text signs what was not sent: refused, with the offending byte.
 */
function utf8Body(file: string, bytes: Buffer): string {
  try {
    return new TextDecoder('utf-8', { fatal: true }).decode(bytes);
  } catch {
    const offset = firstInvalidUtf8(bytes);
    const byte = bytes[offset]!.toString(16).toUpperCase().padStart(2, '0');
    throw new CliError(
      `${file} is not UTF-8 (byte 0x${byte} at offset ${offset}): the gateway reads a body as UTF-8, so no signature over these bytes would match; convert it first (iconv -f <its charset> -t UTF-8 ${file} > body.json) and sign and send that`,
    );
  }
}

/** The offset of the first byte that does not begin a valid UTF-8 sequence. */
function firstInvalidUtf8(bytes: Buffer): number {
  const decoder = new TextDecoder('utf-8', { fatal: true });
  let good = 0;
  for (let end = 1; end <= bytes.length; end++) {
    try {
      decoder.decode(bytes.subarray(good, end));
      good = end;
    } catch {
      // an incomplete sequence may still complete within 3 more bytes
      if (end - good >= 4 || end === bytes.length) return good;
    }
  }
  return good;
}
