/**
 * `endpoints list | set | pause | resume --aws`: the receivers of a deployed stack. Their configuration and health are
 * items of the deliveries table (each Deliver function keeps what it read for ENDPOINT_CACHE_TTL_MS: a change
 * applies within 5 s); their delivery secrets are the DeliverySigningSecrets secret (read by Deliver at most every 5 minutes); the
 * deployed URLs are the Deliver function's variables.
 */
import { GetFunctionConfigurationCommand } from '@aws-sdk/client-lambda';
import { GetSecretValueCommand, PutSecretValueCommand } from '@aws-sdk/client-secrets-manager';
import { GetQueueAttributesCommand, type GetQueueAttributesCommandOutput } from '@aws-sdk/client-sqs';
import { WEBHOOK_TYPES, type WebhookType } from '../../../functions/domain/conversation.ts';
import { DELIVERY_URL_VARIABLES } from '../../../functions/domain/delivery.ts';
import { endpointView } from '../../../functions/domain/endpoints.ts';
import { parseSecretsBySource, rotatedSecrets } from '../../../functions/domain/signatures.ts';
import { DynamoEndpointStore, ENDPOINT_CACHE_TTL_MS } from '../../../functions/shared/endpoint-store.ts';
import { settings } from '../../../functions/shared/settings.ts';
import { type EndpointEdit, printEndpoints } from '../endpoint-table.ts';
import { CliError, note, out } from '../shared.ts';
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

/**
 * The schedule's total: SQS does not count by type, so `queued` per type is unknown on AWS. A footer only: when the
 * queue cannot be read (a role without sqs:GetQueueAttributes), the receivers are listed all the same.
 */
async function pendingTotal(clients: AwsClients, queueUrl: string | null): Promise<string | null> {
  if (!queueUrl) return null;
  let attributes: GetQueueAttributesCommandOutput;
  try {
    attributes = await clients.sqs.send(
      new GetQueueAttributesCommand({
        QueueUrl: queueUrl,
        AttributeNames: [
          'ApproximateNumberOfMessages',
          'ApproximateNumberOfMessagesNotVisible',
          'ApproximateNumberOfMessagesDelayed',
        ],
      }),
    );
  } catch (error) {
    return `deliveries pending in the schedule not counted (${(error as Error).name} on sqs:GetQueueAttributes)`;
  }
  const total = Object.values(attributes.Attributes ?? {}).reduce((sum, n) => sum + Number(n ?? 0), 0);
  return `${total} deliveries pending in the schedule across all types (the queue does not count them by type)`;
}

/** Put the type's new secrets into the stack's delivery secret (the whole map, as Secrets Manager replaces it). */
async function changeSecrets(clients: AwsClients, secretArn: string, type: WebhookType, edit: EndpointEdit) {
  const current = await clients.secrets.send(new GetSecretValueCommand({ SecretId: secretArn }));
  const text = current.SecretString || '{}';
  const all = parseSecretsBySource(text, 'the DeliverySigningSecrets secret');
  const next = rotatedSecrets(all[type] ?? [], edit.secret, edit.dropPreviousSecret);
  const map = { ...(JSON.parse(text) as Record<string, unknown>), [type]: next.length === 1 ? next[0] : next };
  await clients.secrets.send(new PutSecretValueCommand({ SecretId: secretArn, SecretString: JSON.stringify(map) }));
  return next;
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
  if (sub === 'pause') await store.configure(type!, { paused: true }, now);
  if (sub === 'resume') await store.resume(type!, now);
  if (edit && Object.keys(edit.change).length > 0) await store.configure(type!, edit.change, now);
  if (edit && (edit.secret !== undefined || edit.dropPreviousSecret)) {
    const secretArn = stack.outputs.deliverySigningSecretsArn;
    if (!secretArn) throw new CliError(`stack "${stackName}" has no DeliverySigningSecretsArn output`);
    const next = await changeSecrets(clients, secretArn, type!, edit);
    // On stderr with --json, so stdout stays one JSON document.
    (options.json ? note : out)(
      `${type} deliveries are signed with ${next.length === 2 ? 'two secrets (the new one first)' : 'one secret'}: the Deliver functions pick it up within 5 minutes (their cache of the secret)${next.length === 2 ? '; both signatures are on the wire until --drop-previous-secret' : ''}`,
    );
  }
  const [{ urls, policy, note: deployedNote }, endpoints, pending] = await Promise.all([
    deployedConfig(clients, stack.outputs.deliverFunction),
    store.list(),
    sub === 'list' ? pendingTotal(clients, stack.outputs.failedDeliveryQueueUrl) : Promise.resolve(null),
  ]);
  const views = endpoints
    .filter((e) => !type || e.webhook_type === type)
    .map((e) => endpointView(e, urls[e.webhook_type], policy, null));
  const footer = [
    deployedNote,
    pending,
    sub === 'list' ? null : `The Deliver functions use this within ${ENDPOINT_CACHE_TTL_MS / 1000} s (no deploy).`,
  ]
    .filter(Boolean)
    .join('\n');
  printEndpoints(views, options.json, footer || undefined);
  return 0;
}
