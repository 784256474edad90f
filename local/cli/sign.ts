import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseArgs } from 'node:util';
import { statusSigningPayload } from '../../functions/domain/conversation-status.ts';
import { type SignedHeaders, signOutbound } from '../../functions/domain/signatures.ts';
import { CliError, note } from './shared.ts';

/**
 * `webhook-gateway sign --secret whsec_… (--data JSON | --file body.json | --status CONVERSATION_ID) [--id ID]
 * [--json]`: the Standard Webhooks headers a sender puts on one request, as curl arguments (or JSON). The body must
 * then be sent byte for byte; `--status` signs `GET /conversations/<id>` (docs/security.md, "Reading a status").
 */
export async function sign(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: {
      secret: { type: 'string' },
      data: { type: 'string' },
      file: { type: 'string' },
      status: { type: 'string' },
      id: { type: 'string' },
      json: { type: 'boolean' },
    },
  });
  const secret = values.secret ?? process.env.WEBHOOK_SECRET;
  if (!secret) throw new CliError('sign needs --secret whsec_… (or WEBHOOK_SECRET)');
  if (!/^whsec_/.test(secret)) throw new CliError('the secret must start with whsec_');
  const given = [values.data, values.file, values.status].filter((v) => v !== undefined).length;
  if (given !== 1)
    throw new CliError(
      'sign needs exactly one of --data JSON or --file PATH (the exact body you will send), or --status CONVERSATION_ID',
    );
  const body =
    values.status !== undefined
      ? statusSigningPayload(values.status)
      : (values.data ?? (await readFile(values.file!, 'utf8')));
  // curl's -d @file (the form most try first) drops a file's CR and LF, so what it sends is not what was signed.
  if (values.file !== undefined && /[\r\n]/.test(body))
    note(
      `${values.file} has line breaks: send it with curl --data-binary @${values.file} (curl -d @${values.file} drops them, and the signature would not match what it sends)`,
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
