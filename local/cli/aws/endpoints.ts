/**
 * `endpoints list | set | pause | resume --aws`: the receivers of a deployed stack. Their configuration and health are
 * items of the deliveries table (each Deliver function keeps what it read for ENDPOINT_CACHE_TTL_MS: a change
 * applies within 5 s); their delivery secrets are the DeliverySigningSecrets secret (read by Deliver at most every 5
 * minutes, and again at once when the receiver's item names other secrets, which `--secret` writes there); the
 * deployed URLs are the Deliver function's variables.
 */
import { GetFunctionConfigurationCommand } from '@aws-sdk/client-lambda';
import { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { WEBHOOK_TYPES, type WebhookType } from '../../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../../../functions/domain/delivery.ts';
import { shownDeliveryUrl } from '../../../functions/domain/delivery-url.ts';
import { type Endpoint, endpointView, newUrlNote } from '../../../functions/domain/endpoints.ts';
import { secretsFingerprint } from '../../../functions/domain/secrets-fingerprint.ts';
import { parseSecretsBySource, type SecretsBySource } from '../../../functions/domain/signatures.ts';
import { DynamoEndpointStore, ENDPOINT_CACHE_TTL_MS } from '../../../functions/shared/endpoint-store.ts';
import { settings } from '../../../functions/shared/settings.ts';
import { type EndpointEdit, editedSecrets, printEndpoints } from '../endpoint-table.ts';
import { printTestDelivery } from '../endpoint-test.ts';
import { CliError, jsonText, note, out } from '../shared.ts';
import { countSchedule } from './deliveries.ts';
import { explainAwsError } from './errors.ts';
import { type AwsClients, readStack, requireOutput } from './stack.ts';

/**
 * What the stack was deployed with, from the Deliver function's variables: the URLs and the circuit breaker's policy
 * (the defaults when they cannot be read: a role without lambda:GetFunctionConfiguration).
 */
async function deployedConfig(clients: AwsClients, functionName: string | null) {
  const urls = Object.fromEntries(WEBHOOK_TYPES.map((t) => [t, null])) as Record<WebhookType, string | null>;
  if (!functionName)
    return {
      urls,
      policy: settings({}).breaker,
      note: 'the stack has no DeliverFunctionName output: deployed URLs not shown',
    };
  try {
    const fn = await clients.lambda.send(new GetFunctionConfigurationCommand({ FunctionName: functionName }));
    const variables = fn.Environment?.Variables ?? {};
    for (const type of WEBHOOK_TYPES) urls[type] = variables[DELIVERY_URL_VARIABLES[type]] || null;
    return { urls, policy: settings(variables).breaker, note: null };
  } catch (error) {
    return {
      urls,
      policy: settings({}).breaker,
      note: `deployed URLs not shown (${(error as Error).name} on lambda:GetFunctionConfiguration)`,
    };
  }
}

/** The schedule's total (SQS does not count by type, so `queued` per type is unknown on AWS), as the list's footer. */
async function pendingTotal(clients: AwsClients, queueUrl: string | null): Promise<string | null> {
  if (!queueUrl) return null;
  const counted = await countSchedule(clients, queueUrl);
  if ('notCounted' in counted) return `deliveries pending in the schedule not counted (${counted.notCounted})`;
  return `${counted.total} deliveries pending in the schedule across all types (the queue does not count them by type)`;
}

const secretText = async (clients: AwsClients, secretArn: string) =>
  (await clients.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }))).SecretString || '{}';

/**
 * The stack's delivery secrets by type, to say how each receiver's deliveries are signed (never shown), or why they
 * could not be read (a role without secretsmanager:GetSecretValue).
 */
async function signingSecrets(
  clients: AwsClients,
  secretArn: string | null,
  explain: (error: unknown) => string,
): Promise<{ secrets: SecretsBySource | null; note: string | null }> {
  if (!secretArn)
    return { secrets: null, note: 'the stack has no DeliverySigningSecretsArn output: signing not shown' };
  try {
    return {
      secrets: parseSecretsBySource(await secretText(clients, secretArn), 'the DeliverySigningSecrets secret'),
      note: null,
    };
  } catch (error) {
    return { secrets: null, note: `signing not shown (${explain(error)})` };
  }
}

/**
 * The stack's delivery secret as it is (`text`) and the type's secrets after `edit` (`next`): read, and the edit
 * refused (a rotation under way), before anything of the change is written.
 */
async function plannedSecrets(clients: AwsClients, secretArn: string, type: WebhookType, edit: EndpointEdit) {
  const text = await secretText(clients, secretArn);
  const all = parseSecretsBySource(text, 'the DeliverySigningSecrets secret');
  return { text, next: editedSecrets(type, all[type] ?? [], edit) };
}

/** Put the type's new secrets into the stack's delivery secret (the whole map, as Secrets Manager replaces it). */
async function putSecrets(
  clients: AwsClients,
  secretArn: string,
  type: WebhookType,
  { text, next }: { text: string; next: string[] },
) {
  const map = { ...(JSON.parse(text) as Record<string, unknown>), [type]: next.length === 1 ? next[0] : next };
  await clients.secrets.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: JSON.stringify(map) }));
}

/** What a change of the table did, in words (for a line that must say it was made), or null when it made none. */
function tableChange(sub: string, edit: EndpointEdit | null): string | null {
  if (sub === 'pause' || sub === 'resume') return `${sub}d`;
  const parts = [
    edit?.change.url !== undefined
      ? `URL ${edit.change.url === null ? 'back to the deployed one' : shownDeliveryUrl(edit.change.url)}`
      : null,
    edit?.change.rate_per_second !== undefined ? `rate ${edit.change.rate_per_second ?? 'none'}/s` : null,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : null;
}

/** What a change of the signing secrets did, in words, or null when it made none. */
function secretChange(edit: EndpointEdit | null): string | null {
  const parts = [
    edit?.secret !== undefined ? 'new signing secret' : null,
    edit?.dropPreviousSecret ? 'previous signing secret dropped' : null,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : null;
}

export async function awsEndpoints(
  clients: AwsClients,
  stackName: string,
  options: { sub: string; type: WebhookType | null; edit: EndpointEdit | null; json: boolean },
): Promise<number> {
  const stack = await readStack(clients, stackName);
  const store = new DynamoEndpointStore(requireOutput(stack, 'deliveriesTable'), clients.dynamodb);
  const { sub, type, edit } = options;
  const now = new Date();
  const explain = (error: unknown) => explainAwsError(error, { stack: stackName }).message;
  const secretArn = stack.outputs.deliverySigningSecretsArn;
  if (sub === 'test') {
    const [{ config }, { urls }, signing] = await Promise.all([
      store.get(type!, { consistent: true }),
      deployedConfig(clients, stack.outputs.deliverFunction),
      signingSecrets(clients, secretArn ?? null, explain),
    ]);
    if (signing.note) note(`${type}: ${signing.note}`);
    const secrets = signing.secrets && (signing.secrets[type!] ?? []);
    return printTestDelivery(type!, config.url ?? urls[type!], secrets, {
      json: options.json,
      timeoutMs: settings({}).deliveryTimeoutMs,
    });
  }
  const rotating = edit !== null && (edit.secret !== undefined || edit.dropPreviousSecret);
  // Refused before anything is written: half a change is what this must not leave.
  if (rotating && !secretArn) throw new CliError(`stack "${stackName}" has no DeliverySigningSecretsArn output`);
  // So is a secret the edit refuses (a rotation under way), or that cannot be read: the URL and rate stay as they were.
  const planned = rotating ? await plannedSecrets(clients, secretArn!, type!, edit) : null;
  // The table's answer to a change is the item after it (ALL_NEW): what the Delivers will read, shown without a
  // second read that could fail after the change was made.
  let changed: Endpoint | null = null;
  if (sub === 'pause') changed = await store.configure(type!, { paused: true }, now);
  if (sub === 'resume') changed = await store.resume(type!, now);
  // A new URL is a new receiver (docs/operations.md#receivers): the deployed one, read first, is the one delivered to
  // while none is set, so setting it there is the same receiver.
  const deployedFirst =
    edit?.change.url !== undefined ? await deployedConfig(clients, stack.outputs.deliverFunction) : null;
  if (edit && Object.keys(edit.change).length > 0) {
    const configured = await store.configure(type!, edit.change, now, deployedFirst?.urls[type!] ?? undefined);
    changed = configured;
    // On stderr with --json, so stdout stays one JSON document.
    if (configured.new_url) (options.json ? note : out)(newUrlNote(configured));
  }
  let secrets: SecretsBySource | null = null;
  if (planned) {
    const { next } = planned;
    try {
      await putSecrets(clients, secretArn!, type!, planned);
    } catch (error) {
      if (!changed) throw error;
      throw new CliError(
        `${type}: the change was made (${tableChange(sub, edit)}), but its signing secrets were not changed: ${explain(error)}`,
      );
    }
    secrets = { [type!]: next };
    // Each Deliver reads the receiver's item every 5 s: one that names other secrets than its cached ones reads the
    // secret again at once (functions/shared/secrets.ts deliverySecrets). Without the mark, its 5-minute cache ends.
    // Its answer is the receiver as the Delivers will read it, with since when these secrets sign.
    const marked = await store
      .markSecrets(type!, secretsFingerprint(next), now)
      .then((item) => {
        changed = item;
        return null;
      })
      .catch((error: unknown) => explain(error));
    const when = marked
      ? `within 5 minutes (their cache of the secret: telling them at once failed, ${marked})`
      : `within ${ENDPOINT_CACHE_TTL_MS / 1000} seconds`;
    // On stderr with --json, so stdout stays one JSON document.
    (options.json ? note : out)(
      `${type} deliveries are signed with ${next.length === 2 ? 'two secrets (the new one first)' : 'one secret'}: the Deliver functions sign with ${next.length === 2 ? 'them' : 'it'} ${when}${next.length === 2 ? '; both signatures are on the wire until --drop-previous-secret' : ''}`,
    );
  }
  let endpoints: Endpoint[];
  try {
    endpoints = changed ? [changed] : await store.list();
  } catch (error) {
    if (sub === 'list') throw error;
    // Only the confirmation failed: the change was made (exit 0), and the user is told so and how to see it; with
    // --json a script is told the same on stdout (docs/operations.md#receivers), never left with nothing to parse.
    const change = [tableChange(sub, edit), secretChange(edit)].filter(Boolean).join(', ');
    const seeIt = 'webhook-gateway endpoints list --aws';
    note(
      `webhook-gateway: ${type}: the change was made (${change}), but reading the receiver back failed (${explain(error)}); see it with: ${seeIt}`,
    );
    if (options.json) {
      out(
        jsonText({
          webhook_type: type,
          change_made: true,
          change,
          read_back: 'failed',
          error: explain(error),
          see: seeIt,
        }),
      );
    }
    return 0;
  }
  const [{ urls, policy, note: deployedNote }, pending, signing] = await Promise.all([
    deployedFirst ?? deployedConfig(clients, stack.outputs.deliverFunction),
    sub === 'list' ? pendingTotal(clients, stack.outputs.failedDeliveryQueueUrl) : Promise.resolve(null),
    secrets ? { secrets, note: null } : signingSecrets(clients, secretArn ?? null, explain),
  ]);
  const views = endpoints
    .filter((e) => !type || e.webhook_type === type)
    .map((e) => endpointView(e, urls[e.webhook_type], policy, null, signing.secrets));
  const footer = [
    deployedNote,
    signing.note,
    pending,
    sub === 'list' ? null : `The Deliver functions use this within ${ENDPOINT_CACHE_TTL_MS / 1000} s (no deploy).`,
  ]
    .filter(Boolean)
    .join('\n');
  printEndpoints(views, options.json, footer || undefined);
  return 0;
}
