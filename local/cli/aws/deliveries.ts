/**
 * `deliveries list|redrive --aws`: the same commands against a deployed stack. On AWS the automatic schedule lives in
 * the failed-delivery queue (the scheduler Lambda works it); what an operator acts on is its dead-letter queue.
 * Queue URLs and the redelivery state machine come from the stack's outputs (local/cli/aws/stack.ts).
 */
import { GetObjectCommand } from '@aws-sdk/client-s3';
import {
  GetQueueAttributesCommand,
  type GetQueueAttributesCommandOutput,
  type QueueAttributeName,
} from '@aws-sdk/client-sqs';
import type { DeliveryAttempt } from '../../../functions/domain/conversation.ts';
import { isConversationId } from '../../../functions/domain/conversation-id.ts';
import { exportKey, recordFromExport } from '../../../functions/domain/export-formats.ts';
import {
  deliveryNeverQueued,
  type FailedDeliveryEnvelope,
  owedBy,
  resendRefusal,
  withLoggedAttempts,
  withLoggedDelivery,
} from '../../../functions/domain/failed-delivery.ts';
import { DynamoAttemptLog } from '../../../functions/shared/attempt-log.ts';
import { DynamoEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import {
  type QueuedEnvelope,
  REDELIVERY_VISIBILITY_SECONDS,
  SqsFailedDeliveryQueue,
  type UnreadableMessage,
} from '../../../functions/shared/failed-delivery-queue.ts';
import { type RedeliveryResult, redeliverHeld, resend, withHeldReason } from '../../../functions/shared/redelivery.ts';
import { DynamoRedeliveryClaims, type RedeliveryClaim } from '../../../functions/shared/redelivery-claim.ts';
import { stepFunctionsRedeliver } from '../../../functions/shared/redelivery-execution.ts';
import { settings } from '../../../functions/shared/settings.ts';
import { withLoggedCounts } from '../../history/logged-counts.ts';
import {
  attemptsLabel,
  CliError,
  deliveriesTable,
  jsonText,
  note,
  noteUnreadLogs,
  parseSince,
  redriveExitCode,
  resultDetail,
  stateLabel,
} from '../shared.ts';
import { explainAwsError, exportMissingOrDenied, surelyNotDone, withAftermath } from './errors.ts';
import { AWS_STACK_OUTPUTS, type AwsClients, type ItemErrorExplainer, readStack, requireOutput } from './stack.ts';

/** Most dead-letter messages one command reads. */
const SCAN_LIMIT = 1000;
/** A listing hides what it has read for this long at most (it makes them visible again when it is done). */
const PEEK_HOLD_SECONDS = 30;
/** A redrive holds its candidates while it works through them one by one. */
const REDRIVE_HOLD_SECONDS = 900;

interface DeliveryStack {
  name: string;
  queueUrl: string;
  deadLetterQueueUrl: string;
  redeliveryStateMachineArn: string | null;
  /** Where a redrive reads whether a conversation was delivered meanwhile (deliveredSince). */
  deliveriesTable: string | null;
  exportBucket: string | null;
}

async function readDeliveryStack(clients: AwsClients, name: string): Promise<DeliveryStack> {
  const stack = await readStack(clients, name);
  return {
    name,
    queueUrl: requireOutput(stack, 'failedDeliveryQueueUrl'),
    deadLetterQueueUrl: requireOutput(stack, 'failedDeliveryDeadLetterQueueUrl'),
    redeliveryStateMachineArn: stack.outputs.redeliveryStateMachineArn,
    deliveriesTable: stack.outputs.deliveriesTable,
    exportBucket: stack.outputs.exportBucket,
  };
}

/**
 * Whether a conversation was delivered: the delivered attempt, or null (with why it could not be told, if so).
 */
interface DeliveredCheck {
  delivered: DeliveryAttempt | null;
  /** The conversation's attempts in the attempt log (none when it could not be read). */
  logged: readonly DeliveryAttempt[];
  /** Whether the export says delivered too; otherwise the attempt log told it, and the export may say retrying. */
  exported: boolean;
  /** What could not be read (an AWS error, an output the stack lacks); empty when both were read. */
  unchecked: string[];
}

/**
 * The failed-delivery store on AWS keeps only what is owed: a delivered envelope's message is deleted
 * (docs/deploy.md#failed-deliveries-on-aws), so a dead letter does not say whether its conversation was delivered
 * since (the scheduler delivered a copy of it from the schedule's queue, or could not delete the message it
 * delivered, which its redrive policy then moved here; another operator's redrive). What does say it: the attempt
 * log (the deliveries table: every attempt, written by Deliver after the POST) and the export, which every
 * redelivery rewrites (docs/operations.md#failed-deliveries). Either one with a delivered attempt is enough.
 */
async function deliveredSince(clients: AwsClients, stack: DeliveryStack, id: string): Promise<DeliveredCheck> {
  const check: DeliveredCheck = { delivered: null, logged: [], exported: false, unchecked: [] };
  const failed = (error: unknown, call: string) =>
    check.unchecked.push(`${(error as Error).name ?? 'Error'} on ${call}: ${(error as Error).message}`);
  if (stack.deliveriesTable) {
    try {
      const log = new DynamoAttemptLog(stack.deliveriesTable, settings().attemptLogRetentionDays, clients.dynamodb);
      check.logged = await log.list(id);
      check.delivered = check.logged.find((a) => a.outcome === 'delivered') ?? null;
      if (check.delivered) return check;
    } catch (error) {
      failed(error, 'dynamodb:Query');
    }
  } else check.unchecked.push(`no ${AWS_STACK_OUTPUTS.deliveriesTable} output`);
  if (stack.exportBucket) {
    try {
      const object = await clients.s3.send(
        new GetObjectCommand({ Bucket: stack.exportBucket, Key: exportKey(id, 'conversation.json') }),
      );
      const record = recordFromExport(JSON.parse((await object.Body?.transformToString('utf8')) ?? ''));
      check.exported = record?.webhook_context.delivery_status === 'delivered';
      if (record && check.exported)
        check.delivered = record.execution.delivery_attempts.findLast((a) => a.outcome === 'delivered') ?? {
          attempt: record.execution.delivery_attempts.length,
          at: '',
          duration_ms: 0,
          outcome: 'delivered',
        };
    } catch (error) {
      // No export yet (S3 refused it, or it is being written): it says nothing either way.
      if ((error as Error).name !== 'NoSuchKey') failed(error, 's3:GetObject');
    }
  } else check.unchecked.push(`no ${AWS_STACK_OUTPUTS.exportBucket} output`);
  return check;
}

/** The line of an already delivered conversation: when, how, and what to do to deliver it again. */
function alreadyDeliveredDetail(id: string, attempt: DeliveryAttempt, reExported = false): string {
  const how = [attempt.at ? `at ${attempt.at}` : null, attempt.via ? `by the ${attempt.via}` : null].filter(Boolean);
  return `: delivered meanwhile (attempt ${attempt.attempt}${how.length > 0 ? ` ${how.join(' ')}` : ''}); nothing was sent${reExported ? ', and its export now says delivered' : ''}. To deliver it again: webhook-gateway deliveries resend ${id} --aws`;
}

function queueFor(clients: AwsClients, stack: DeliveryStack): SqsFailedDeliveryQueue {
  return new SqsFailedDeliveryQueue(
    clients.sqs,
    stack.queueUrl,
    stack.deadLetterQueueUrl,
    settings().redeliverySchedule,
  );
}

interface Scan {
  items: QueuedEnvelope[];
  unreadable: UnreadableMessage[];
  truncated: boolean;
  /**
   * Why the read ended before the queue was read through (not the limit): the hold on what it had read could not be
   * extended, or lapsed, so those messages showed again and what lay behind them was not reached; else null.
   */
  stopped: string | null;
  /** How long what was read stays hidden unless released, and from when (for the words of a release that failed). */
  holdSeconds: number;
  startedAt: number;
}

/**
 * How many of `count` messages a failed release left hidden: SQS's count when the release knows it (a batch answered
 * with failed entries, or a later batch refused after earlier ones changed), else all of them.
 */
const stillHiddenOf = (error: unknown, count: number) =>
  Math.min(count, (error as { stillHidden?: number } | null)?.stillHidden ?? count);

/** What stays hidden, and until when, when making read messages visible again failed. */
function hiddenUntil(count: number, scan: Pick<Scan, 'holdSeconds' | 'startedAt'>): string {
  const until = new Date(scan.startedAt + scan.holdSeconds * 1000).toISOString();
  return `${count} dead letter${count === 1 ? '' : 's'} it read stay${count === 1 ? 's' : ''} hidden in the dead-letter queue until ${until}: "deliveries list --aws" does not show ${count === 1 ? 'it' : 'them'} until then`;
}

/**
 * Make read messages visible again, or fail saying what stays hidden and until when: a role without
 * sqs:ChangeMessageVisibility would otherwise leave an operator looking at a dead-letter queue that seems empty.
 */
async function releaseRead(
  queue: SqsFailedDeliveryQueue,
  items: Parameters<SqsFailedDeliveryQueue['release']>[0],
  scan: Pick<Scan, 'holdSeconds' | 'startedAt'>,
): Promise<void> {
  try {
    await queue.release(items);
  } catch (error) {
    // A batch that changed some of them: only those it did not stay hidden.
    throw withAftermath(error, hiddenUntil(stillHiddenOf(error, items.length), scan));
  }
}

/**
 * Read the dead-letter queue, each message once, holding what was read invisible for `holdSeconds`. A read longer than
 * that (a big queue, a slow network) extends the hold of everything read so far once half of it has passed: else the
 * first messages showed again, the next receive returned only those, and the read ended there as if the queue had no
 * more, listing or redriving part of it without a word. A hold it cannot extend, or one that lapsed all the same,
 * ends the read with `stopped` saying why.
 */
async function scanDeadLetters(queue: SqsFailedDeliveryQueue, holdSeconds: number, limit = SCAN_LIMIT): Promise<Scan> {
  const scan: Scan = { items: [], unreadable: [], truncated: false, stopped: null, holdSeconds, startedAt: Date.now() };
  const seen = new Set<string>();
  for (;;) {
    if (seen.size >= limit) {
      scan.truncated = true;
      return scan;
    }
    const held = [...scan.items, ...scan.unreadable];
    if (held.length > 0 && Date.now() - scan.startedAt >= (holdSeconds * 1000) / 2) {
      const renewedAt = Date.now();
      try {
        await queue.release(held, holdSeconds);
      } catch (error) {
        const { name, message } = error as Error;
        scan.stopped = `the ${holdSeconds} s hold on the messages it had read could not be extended (${name}: ${message})`;
        return scan;
      }
      scan.startedAt = renewedAt;
    }
    let batch: Awaited<ReturnType<SqsFailedDeliveryQueue['receive']>>;
    try {
      batch = await queue.receive({
        queueUrl: queue.deadLetterQueueUrl,
        visibilitySeconds: holdSeconds,
        waitSeconds: 1,
      });
    } catch (error) {
      // A later receive refused (throttled past the retries, the network): what the earlier ones hid is shown again.
      const read = [...scan.items, ...scan.unreadable];
      const hidden =
        read.length === 0
          ? 0
          : await queue.release(read).then(
              () => 0,
              (failed: unknown) => stillHiddenOf(failed, read.length),
            );
      throw hidden === 0 ? error : withAftermath(error, hiddenUntil(hidden, scan));
    }
    const fresh = [...batch.envelopes, ...batch.unreadable].filter((m) => !seen.has(m.messageId));
    if (fresh.length === 0) {
      if (batch.count > 0) scan.stopped = `messages it had read showed again (their ${holdSeconds} s hold lapsed)`;
      return scan;
    }
    for (const m of fresh) seen.add(m.messageId);
    scan.items.push(...batch.envelopes.filter((m) => fresh.includes(m)));
    scan.unreadable.push(...batch.unreadable.filter((m) => fresh.includes(m)));
  }
}

type Out = (line: string) => void;
const stdout: Out = (line) => process.stdout.write(`${line}\n`);

/**
 * Taken from the dead-letter queue, an envelope is dead whatever it says: one that still says `pending` was moved
 * there by the queue's redrive policy (receive_limit). The list (table and --json), the plan of a redrive and a
 * failed redrive's export all show it so, in the local store's states (docs/deploy.md#failed-deliveries-on-aws).
 */
function asDeadLettered(e: FailedDeliveryEnvelope): FailedDeliveryEnvelope {
  return e.state === 'pending'
    ? { ...e, state: 'dead', next_due_at: null, dead_reason: e.dead_reason ?? 'receive_limit' }
    : e;
}

export async function awsDeliveriesList(
  clients: AwsClients,
  options: { stack: string; json?: boolean; limit?: number },
  out: Out = stdout,
): Promise<number> {
  const stack = await readDeliveryStack(clients, options.stack);
  const queue = queueFor(clients, stack);
  // Counted before this command hides any: what another command (a redrive, a listing) holds right now.
  const hiddenByOthers = await countHidden(clients, stack.deadLetterQueueUrl);
  const scan = await scanDeadLetters(queue, PEEK_HOLD_SECONDS, options.limit);
  await releaseRead(queue, [...scan.items, ...scan.unreadable], scan);
  const pendingLine = await scheduleLine(clients, stack.queueUrl);
  const listed = scan.items
    .map((m) => asDeadLettered(m.envelope))
    .sort((a, b) => b.created_at.localeCompare(a.created_at));
  // Counted with the tries only the attempt log has (one dynamodb:Query per dead letter listed, after they are visible
  // again): what a redrive numbers its attempt after. A stack without the table: as the envelopes carry them.
  const log = stack.deliveriesTable
    ? new DynamoAttemptLog(stack.deliveriesTable, settings().attemptLogRetentionDays, clients.dynamodb)
    : null;
  const counted = log ? await withLoggedCounts(listed, (id) => log.list(id)) : { envelopes: listed, unread: [] };
  noteUnreadLogs(counted.unread);
  const envelopes = counted.envelopes;
  // --json: the envelopes, as the local `deliveries list --json` prints them (one shape for scripts run on both);
  // what is counted rather than listed goes to stderr, as its lines.
  const say = options.json ? note : out;
  if (options.json) out(jsonText(envelopes));
  else if (envelopes.length === 0) out(`No dead-lettered deliveries in stack ${stack.name}.`);
  else out(deliveriesTable(envelopes, stateLabel, () => '-'));
  if (scan.truncated) say(`(stopped after ${options.limit ?? SCAN_LIMIT} messages; there are more)`);
  if (scan.stopped)
    say(
      `(stopped after ${scan.items.length + scan.unreadable.length} messages: ${scan.stopped}; there may be more: run it again)`,
    );
  if (scan.unreadable.length > 0)
    say(
      `${scan.unreadable.length} unreadable message(s) in the dead-letter queue (not failed deliveries): see ${stack.deadLetterQueueUrl}`,
    );
  if (hiddenByOthers > 0)
    say(
      `about ${hiddenByOthers} more dead letter${hiddenByOthers === 1 ? ' is' : 's are'} hidden right now: another command (a redrive, a listing) is reading ${hiddenByOthers === 1 ? 'it' : 'them'}, and ${hiddenByOthers === 1 ? 'it shows' : 'they show'} again when it is done (at most ${REDRIVE_HOLD_SECONDS / 60} minutes)`,
    );
  say(pendingLine);
  return 0;
}

/**
 * How many messages of a queue are hidden (received, not yet deleted or released), approximately; 0 when they cannot
 * be counted (a role without sqs:GetQueueAttributes: the schedule's line says so).
 */
async function countHidden(clients: Pick<AwsClients, 'sqs'>, queueUrl: string): Promise<number> {
  try {
    const attributes = await clients.sqs.send(
      new GetQueueAttributesCommand({ QueueUrl: queueUrl, AttributeNames: ['ApproximateNumberOfMessagesNotVisible'] }),
    );
    return Number(attributes?.Attributes?.ApproximateNumberOfMessagesNotVisible ?? 0) || 0;
  } catch {
    return 0;
  }
}

/**
 * How many deliveries the schedule's queue holds (SQS does not count by type), or why they could not be counted: a
 * count is a footer only (`deliveries list`, `endpoints list`), so a role without sqs:GetQueueAttributes still sees
 * what it asked for.
 */
export async function countSchedule(
  clients: Pick<AwsClients, 'sqs'>,
  queueUrl: string,
): Promise<{ visible: number; notVisible: number; delayed: number; total: number } | { notCounted: string }> {
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
    return { notCounted: `${(error as Error).name} on sqs:GetQueueAttributes` };
  }
  const count = (k: QueueAttributeName) => Number(attributes.Attributes?.[k] ?? 0);
  const [visible, notVisible, delayed] = [
    count('ApproximateNumberOfMessages'),
    count('ApproximateNumberOfMessagesNotVisible'),
    count('ApproximateNumberOfMessagesDelayed'),
  ];
  return { visible, notVisible, delayed, total: visible + notVisible + delayed };
}

/** The line counting the schedule's queue under the dead letters. */
async function scheduleLine(clients: AwsClients, queueUrl: string): Promise<string> {
  const counted = await countSchedule(clients, queueUrl);
  if ('notCounted' in counted) return `deliveries pending in the schedule not counted (${counted.notCounted})`;
  return `${counted.total} pending in the schedule (${counted.visible} waiting, ${counted.notVisible} in flight or hidden until due, ${counted.delayed} delayed): the scheduler redelivers them`;
}

export interface AwsRedriveOptions {
  stack: string;
  id?: string;
  all?: boolean;
  since?: string;
  type?: string;
  dryRun?: boolean;
  json?: boolean;
  limit?: number;
  /** How a delivery's AWS error is told on its line (withAws gives one naming the region and profile). */
  explainItemError?: ItemErrorExplainer;
}

/**
 * One group per conversation, oldest conversation first as the local redrive goes (docs/operations.md, "Resend and
 * recover"), whatever order the queue gave them in: in each, the newest message first, then its older copies
 * (at-least-once duplicates).
 */
function byConversation(items: QueuedEnvelope[]): QueuedEnvelope[][] {
  const groups = new Map<string, QueuedEnvelope[]>();
  for (const item of items)
    groups.set(item.envelope.conversation_id, [...(groups.get(item.envelope.conversation_id) ?? []), item]);
  return [...groups.values()]
    .map((g) => g.sort((a, b) => b.envelope.updated_at.localeCompare(a.envelope.updated_at)))
    .sort(([a], [b]) => a!.envelope.created_at.localeCompare(b!.envelope.created_at));
}

/** SQS's answer to a receipt handle of an earlier receive: the message was received again since (or deleted). */
function receivedSinceByAnother(error: unknown): boolean {
  const { name, message } = error as Error;
  return (
    name === 'MessageNotInflight' ||
    name === 'ReceiptHandleIsInvalid' ||
    (name === 'InvalidParameterValue' && /receipt ?handle/i.test(message ?? ''))
  );
}

/** A redrive's result, with the words its progress line adds (not in --json's results). */
type GroupResult = RedeliveryResult & { detail?: string };

async function redriveGroup(
  clients: AwsClients,
  stack: DeliveryStack,
  queue: SqsFailedDeliveryQueue,
  group: QueuedEnvelope[],
  onUnchecked: (id: string, why: string[]) => void,
  explain: (error: unknown) => Promise<string>,
): Promise<GroupResult> {
  const [primary, ...stale] = group as [QueuedEnvelope, ...QueuedEnvelope[]];
  const id = primary.envelope.conversation_id;
  const dropStale = () => Promise.all(stale.map((m) => queue.delete(m)));
  if (primary.envelope.state === 'settled') {
    await Promise.all([queue.delete(primary), dropStale()]);
    return { conversation_id: id, status: 'already_delivered' };
  }
  try {
    await queue.hold(primary, REDELIVERY_VISIBILITY_SECONDS);
  } catch (error) {
    await queue.release(group).catch(() => undefined);
    // Only a receipt handle SQS no longer honours means someone else received it since; anything else (access
    // denied, throttled, the network) is this delivery's error, told as such.
    if (!receivedSinceByAnother(error)) throw error;
    return { conversation_id: id, status: 'skipped', error: 'taken by another redrive meanwhile' };
  }
  // The scheduler's claim (functions/shared/redelivery-claim.ts), taken before anything is read or sent: while the
  // scheduler (or another redrive) redelivers a copy of this envelope, this one waits, and the scheduler's copies wait
  // for this redrive. An error writing it starts nothing: the messages are visible again at once.
  let claim: RedeliveryClaim | null = null;
  if (stack.deliveriesTable) {
    try {
      claim = await new DynamoRedeliveryClaims(stack.deliveriesTable, clients.dynamodb).claim(id, new Date());
    } catch (error) {
      await queue.release(group).catch(() => undefined);
      throw error;
    }
    if (!claim.held) {
      await queue.release(group).catch(() => undefined);
      return {
        conversation_id: id,
        status: 'skipped',
        error: `being redelivered by the scheduler or another redrive now; run the same command again after ${claim.until.toISOString()}`,
      };
    }
  }
  const release = async () => {
    if (claim?.held) await claim.release().catch(() => undefined);
  };
  // Delivered since it was dead-lettered: nothing is sent again. When the export says so too, nothing is owed and its
  // messages go, as a settled envelope's do; when only the attempt log does, the export may still say retrying, so the
  // run only exports the record with that attempt, delivered (withLoggedDelivery). An envelope that owes only its
  // export is written again whatever: that sends nothing.
  let envelope = asDeadLettered(primary.envelope);
  let took: DeliveryAttempt | null = null;
  if (owedBy(primary.envelope) === 'delivery') {
    const check = await deliveredSince(clients, stack, id);
    if (check.delivered && check.exported) {
      await Promise.all([queue.delete(primary), dropStale()]);
      await release();
      return { conversation_id: id, status: 'already_delivered', detail: alreadyDeliveredDetail(id, check.delivered) };
    }
    // The tries only the attempt log has are counted before the run is named after its attempt (as the schedule does).
    envelope = withLoggedAttempts(
      envelope,
      check.logged.filter((a) => a.attempt !== check.delivered?.attempt),
    );
    if (check.delivered) {
      took = check.delivered;
      envelope = withLoggedDelivery(envelope, took, new Date());
    } else if (check.unchecked.length > 0) onUnchecked(id, check.unchecked);
  }
  // The dead-letter queue as the store: settled → deleted, otherwise back into it with the new attempt. What its run
  // left to store is kept: an error storing it comes after the run, which has ended (see ranButNotStored).
  let storing: { updated: FailedDeliveryEnvelope; execution?: string | undefined } | null = null;
  const deadLetters = {
    store: (item: QueuedEnvelope, updated: FailedDeliveryEnvelope) => {
      storing = { updated, execution: lastRun?.execution_name };
      return updated.state === 'settled' ? queue.delete(item) : queue.replace(item, updated, stack.deadLetterQueueUrl);
    },
    leave: () => queue.release(group),
  };
  const startRun = stepFunctionsRedeliver(clients.sfn, stack.redeliveryStateMachineArn!, { schedule: queue.schedule });
  let lastRun: { execution_name?: string | undefined } | null = null;
  const redeliver: typeof startRun = async (...args) => {
    const run = await startRun(...args);
    lastRun = run;
    return run;
  };
  const held = { ...primary, envelope };
  let result: RedeliveryResult;
  try {
    result = await redeliverHeld(deadLetters, held, redeliver, 'redrive', () => new Date());
  } catch (error) {
    if (storing) return ranButNotStored(queue, group, storing, error, release, explain);
    // The run gave no answer. Step Functions refused to start it (throttled past the retries, access denied…):
    // nothing ran, so its messages, copies too, are visible again at once, not hidden for REDRIVE_HOLD_SECONDS.
    // Otherwise its execution may have started: they stay hidden until it has surely ended, so that no redrive
    // meanwhile delivers it a second time (docs/operations.md#failed-deliveries), and its claim ends by itself.
    const refused = surelyNotDone(error);
    if (refused) await release();
    const shown = await queue
      .release(group, refused ? 0 : REDELIVERY_VISIBILITY_SECONDS)
      .then(() => null)
      .catch((released: Error) => `${released.name} on sqs:ChangeMessageVisibilityBatch`);
    const message = await explain(error);
    const when = shown
      ? `it stays hidden in the dead-letter queue up to ${REDRIVE_HOLD_SECONDS / 60} minutes (${shown})`
      : refused
        ? 'it is back in the dead-letter queue now (run the same command again)'
        : `it stays hidden in the dead-letter queue for ${REDELIVERY_VISIBILITY_SECONDS / 60} minutes, until that execution has surely ended (then run the same command again: it says whether it was delivered)`;
    return {
      conversation_id: id,
      status: 'error',
      error: message,
      detail: `: ${message}; ${refused ? 'nothing was started' : 'its execution may have started'}: ${when}`,
    };
  }
  // Its execution ended (SUCCEEDED, a refused Deliver's too: ended): nothing of it is in flight. Otherwise its Deliver
  // may still be: the claim ends by itself.
  if (result.status !== 'error') await Promise.all([dropStale(), release()]);
  else if (result.ended) await release();
  if (took && result.status === 'delivered')
    return { ...result, status: 'already_delivered', detail: alreadyDeliveredDetail(id, took, true) };
  return heldReason(clients, stack.deliveriesTable, result);
}

/**
 * A run that ended (delivered, or its attempt failed) whose dead letter could not then be removed or updated with it
 * (the network went, SQS refused): said as what was done and what was not, not as a start refused ("nothing was
 * started"). Its execution has ended, so the claim ends and its messages are visible again at once: the same command
 * run again reads the attempt log, says a delivered one was delivered and removes it, sending nothing.
 */
async function ranButNotStored(
  queue: SqsFailedDeliveryQueue,
  group: QueuedEnvelope[],
  storing: { updated: FailedDeliveryEnvelope; execution?: string | undefined },
  error: unknown,
  endClaim: () => Promise<void>,
  explain: (error: unknown) => Promise<string>,
): Promise<GroupResult> {
  const id = storing.updated.conversation_id;
  await endClaim();
  const shown = await queue
    .release(group)
    .then(() => null)
    .catch((released: Error) => `${released.name} on sqs:ChangeMessageVisibilityBatch`);
  const message = await explain(error);
  // Settled, or delivered before its export failed (the envelope then owes only the export).
  const delivered =
    storing.updated.state === 'settled' || storing.updated.attempts.some((a) => a.outcome === 'delivered');
  const ran = delivered
    ? `it was delivered, but its dead letter could not be ${storing.updated.state === 'settled' ? 'removed' : 'updated (it owes only its export now)'}`
    : 'its redelivery ran and did not deliver, but its dead letter could not be updated with that attempt';
  const where = shown
    ? `it stays hidden in the dead-letter queue up to ${REDRIVE_HOLD_SECONDS / 60} minutes (${shown})`
    : 'it is back in the dead-letter queue as it was';
  const again = delivered
    ? 'run the same command again: it says it was delivered and removes it, sending nothing'
    : 'run the same command again to try it again';
  return {
    conversation_id: id,
    status: 'error',
    ...(storing.execution ? { execution_name: storing.execution } : {}),
    error: `${ran}: ${message}`,
    detail: `: ${ran} (${message}); ${where}: ${again}`,
  };
}

/** A held redrive or resend with why (withHeldReason), read from the stack's receivers, as the local gateway says it. */
async function heldReason(
  clients: AwsClients,
  table: string | null | undefined,
  result: RedeliveryResult,
): Promise<RedeliveryResult> {
  if (result.status !== 'held' || !table) return result;
  return withHeldReason(result, new DynamoEndpointStore(table, clients.dynamodb), settings().breaker, new Date());
}

export async function awsDeliveriesRedrive(
  clients: AwsClients,
  options: AwsRedriveOptions,
  out: Out = stdout,
): Promise<number> {
  const { id } = options;
  if (!id && !options.all)
    throw new CliError('deliveries redrive needs a conversation id, or --all [--since ISO] [--type T]');
  if (id && options.all) throw new CliError('give either a conversation id or --all, not both');
  if (id && !isConversationId(id)) throw new CliError(`"${id}" is not a conversation id`);
  const since = parseSince(options.since);
  const stack = await readDeliveryStack(clients, options.stack);
  if (!options.dryRun && !stack.redeliveryStateMachineArn) {
    throw new CliError(
      `stack "${stack.name}" has no ${AWS_STACK_OUTPUTS.redeliveryStateMachineArn} output: deploy the current version to redrive`,
    );
  }
  const queue = queueFor(clients, stack);
  const scan = await scanDeadLetters(queue, options.dryRun ? PEEK_HOLD_SECONDS : REDRIVE_HOLD_SECONDS, options.limit);
  const wanted = (e: FailedDeliveryEnvelope) =>
    id
      ? e.conversation_id === id
      : (since === null || Date.parse(e.created_at) >= since) && (!options.type || e.webhook_type === options.type);
  const matching = scan.items.filter((m) => wanted(m.envelope));
  const others = [...scan.items.filter((m) => !matching.includes(m)), ...scan.unreadable];
  await queue.release(others).catch(async (error) => {
    // Of those outside the filter, only the ones SQS did not change stay hidden (before: all of them were counted).
    // The ones this command would redrive are hidden as well: shown again if SQS lets it, else counted too.
    const hidden =
      stillHiddenOf(error, others.length) +
      (await queue.release(matching).then(
        () => 0,
        (failed: unknown) => stillHiddenOf(failed, matching.length),
      ));
    throw withAftermath(error, hiddenUntil(hidden, scan));
  });
  const groups = byConversation(matching);
  if (id && groups.length === 0) {
    // Not owed here: delivered (by the schedule, or by someone else's redrive) is the no-op it is locally, anything
    // else is an error that says where it may be.
    const check = await deliveredSince(clients, stack, id);
    if (check.delivered) {
      if (options.json) out(jsonText([{ conversation_id: id, status: 'already_delivered' }]));
      else
        out(
          `${id} was already delivered${alreadyDeliveredDetail(id, check.delivered).replace(/^: delivered meanwhile/, '')}`,
        );
      return 0;
    }
    throw new CliError(
      check.unchecked.length === 0
        ? `${id} is not in the dead-letter queue of stack ${stack.name}, and not delivered: it may be pending in the schedule (see "deliveries list --aws"), or held by another redrive running now`
        : `${id} is not in the dead-letter queue of stack ${stack.name}: it may be pending in the schedule (see "deliveries list --aws") or already delivered (could not check: ${check.unchecked.join('; ')})`,
    );
  }
  // With --json, stdout is one JSON document (as locally): every other line goes to stderr.
  if (scan.truncated)
    (options.json ? note : out)(
      `(read the first ${options.limit ?? SCAN_LIMIT} dead-letter messages only; run again for the rest)`,
    );
  if (scan.stopped)
    (options.json ? note : out)(
      `(read the first ${scan.items.length + scan.unreadable.length} dead-letter messages only: ${scan.stopped}; run again for the rest)`,
    );
  if (options.dryRun) {
    await releaseRead(queue, matching, scan);
    // Counted as `deliveries list --aws` counts them: with the tries only the attempt log has (one dynamodb:Query per
    // delivery planned, after they are visible again), what the redrive numbers its attempt after.
    const log = stack.deliveriesTable
      ? new DynamoAttemptLog(stack.deliveriesTable, settings().attemptLogRetentionDays, clients.dynamodb)
      : null;
    const planned = groups.map(([m]) => asDeadLettered(m!.envelope));
    const counted = log ? await withLoggedCounts(planned, (id) => log.list(id)) : { envelopes: planned, unread: [] };
    noteUnreadLogs(counted.unread);
    if (options.json) {
      out(jsonText(counted.envelopes));
      return 0;
    }
    out(
      `dry run: would redrive ${groups.length} deliver${groups.length === 1 ? 'y' : 'ies'} from stack ${stack.name}; nothing was changed`,
    );
    for (const e of counted.envelopes)
      out(`  ${e.conversation_id}  ${e.webhook_type}  ${stateLabel(e)}  ${attemptsLabel(e)}`);
    return 0;
  }
  if (groups.length === 0) {
    out(options.json ? '[]' : 'nothing to redrive');
    return 0;
  }
  const counts: Record<string, number> = {};
  const results: RedeliveryResult[] = [];
  // The plan first, then one progress line per delivery, as locally: on stderr with --json, so the JSON stays clean.
  const progress = options.json ? note : out;
  if (groups.length > 1)
    progress(
      `redriving ${groups.length} deliveries from stack ${stack.name}, oldest first (Ctrl-C stops after the current one)`,
    );
  // Said once, not for every delivery: a role that may not read the attempt log or the exports redrives as before.
  let uncheckedSaid = false;
  const onUnchecked = (conversationId: string, why: string[]) => {
    if (uncheckedSaid) return;
    uncheckedSaid = true;
    note(
      `could not check whether ${conversationId}${groups.length > 1 ? ' (and the next ones)' : ''} was delivered meanwhile (${why.join('; ')}): redriven as the dead-letter queue holds it`,
    );
  };
  const explain = async (error: unknown) =>
    options.explainItemError
      ? await options.explainItemError(error)
      : explainAwsError(error, { stack: stack.name }).message;
  const redriveOne = async (i: number, group: QueuedEnvelope[]): Promise<RedeliveryResult> => {
    let result: GroupResult;
    try {
      result = await redriveGroup(clients, stack, queue, group, onUnchecked, explain);
    } catch (error) {
      result = { conversation_id: group[0]!.envelope.conversation_id, status: 'error', error: await explain(error) };
    }
    const { detail, ...shown } = result;
    progress(
      `[${i + 1}/${groups.length}] ${shown.conversation_id} → ${shown.status.replace('_', ' ')}${shown.execution_name ? ` (execution ${shown.execution_name})` : ''}${detail ?? resultDetail(shown)}`,
    );
    return shown;
  };
  // Ctrl-C lets the delivery under way end (its message settled or put back), then makes the ones not reached visible
  // again at once, rather than hidden in the queue for REDRIVE_HOLD_SECONDS; a second Ctrl-C ends the command at once.
  let interrupted = false;
  const now = () => process.exit(130);
  const interrupt = () => {
    interrupted = true;
    note('stopping after the current delivery (Ctrl-C again stops at once)');
    process.once('SIGINT', now);
  };
  process.once('SIGINT', interrupt);
  let done = 0;
  try {
    for (const [i, group] of groups.entries()) {
      if (interrupted) break;
      results.push(await redriveOne(i, group));
      done = i + 1;
    }
  } finally {
    process.off('SIGINT', interrupt);
    process.off('SIGINT', now);
  }
  const left = groups.slice(done);
  const stillHidden =
    left.length > 0
      ? await releaseRead(queue, left.flat(), scan).then(
          () => null,
          (error: Error) => error.message,
        )
      : null;
  for (const result of results) counts[result.status] = (counts[result.status] ?? 0) + 1;
  if (options.json) out(jsonText(results));
  else
    out(
      `redrove ${done}${left.length > 0 ? ` of ${groups.length}` : ''}: ${Object.entries(counts)
        .map(([k, v]) => `${v} ${k.replace('_', ' ')}`)
        .join(', ')}`,
    );
  if (left.length > 0)
    progress(
      stillHidden
        ? `stopped by Ctrl-C: ${left.length} not redriven; making them visible again failed (${stillHidden})`
        : `stopped by Ctrl-C: ${left.length} not redriven, back in the dead-letter queue (run the same command again for them)`,
    );
  // As locally: what was not delivered (failed, held back by its receiver, an error) is exit code 1, so is a stop;
  // skipped ones alone (held by the scheduler or another redrive: nothing done for them) make it 75.
  return redriveExitCode(counts, left.length);
}

/**
 * `deliveries resend <id> --aws`: the conversation as exported (conversation.json, the system of record) delivered
 * once more through the stack's redelivery workflow, under its delivery id; the workflow's Export rewrites the files
 * with the new attempt. Refused, with the reason, for a conversation that is not delivered (that is a redrive).
 */
export async function awsDeliveriesResend(
  clients: AwsClients,
  stackName: string,
  id: string,
): Promise<RedeliveryResult> {
  const stack = await readStack(clients, stackName);
  const bucket = requireOutput(stack, 'exportBucket');
  const stateMachine = requireOutput(stack, 'redeliveryStateMachineArn');
  const { readText } = await import('../../store/export-bucket.ts');
  const where = `s3://${bucket}/${exportKey(id, 'conversation.json')}`;
  const text = await readText(
    { client: clients.s3, bucket, endpoint: `s3://${bucket}`, via: 'running', close: async () => {} },
    exportKey(id, 'conversation.json'),
  ).catch((error: unknown) => {
    const refused = exportMissingOrDenied(error);
    if (refused === null) throw error;
    throw new CliError(`no export of ${id} in ${where}, ${refused}`);
  });
  const record = text === null ? null : recordFromExport(JSON.parse(text));
  if (!record) throw new CliError(`no export of ${id} in ${where}`);
  // No envelope is read here (the queue cannot be searched by conversation): only a delivered conversation, or one
  // the queue refused (nothing else will deliver it), is resent.
  const refused =
    resendRefusal(record, null) ??
    (record.webhook_context.delivery_status === 'delivered' || deliveryNeverQueued(record)
      ? null
      : `${id} is not delivered (${record.webhook_context.delivery_status}): redrive it instead (deliveries redrive ${id} --aws)`);
  if (refused) throw new CliError(refused);
  // The tries only the attempt log has (an attempt whose Deliver Lambda failed after it ran, the export not rewritten
  // since), counted before the run is named, as the redrives do: one dynamodb:Query; one that fails: none (as before).
  const table = stack.outputs.deliveriesTable;
  const logged = table
    ? await new DynamoAttemptLog(table, settings().attemptLogRetentionDays, clients.dynamodb).list(id).catch(() => [])
    : [];
  return heldReason(
    clients,
    table,
    await resend(record, stepFunctionsRedeliver(clients.sfn, stateMachine), new Date(), logged),
  );
}
