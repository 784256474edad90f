import { accessSync, constants, statSync } from 'node:fs';
import path from 'node:path';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { shownDeliveryUrl } from '../../functions/domain/delivery-url.ts';
import { MAX_FAILED_RUNS } from '../../functions/domain/failed-delivery.ts';
import { parseInboundSecrets, parseSecretsBySource } from '../../functions/domain/signatures.ts';
import { LockBusyError, UnreadableFileError } from '../../functions/shared/local-files.ts';
import { SettingsError } from '../../functions/shared/settings.ts';
import { MAX_RESTARTS, type RecoveredExecution, RecoveryStopped } from '../engine/recovery.ts';
import type { InFlight } from '../engine/running.ts';
import { FILTER_STATUSES, FILTER_TYPES } from '../history/conversation-filters.ts';
import { parseApiKeys } from '../server/api-keys.ts';
import { type GatewayOptions, resolveOptions } from '../server/config.ts';
import type { RunningGateway } from '../server/gateway.ts';
import { storageFailureOf } from '../server/storage-failure.ts';
import { damagedFileMessage, wrongKindMessage } from '../store/damaged-files.ts';
import { DataDirInUseError } from '../store/data-dir-lock.ts';
import { makeDataDir } from '../store/data-dir-mode.ts';
import { readDeliverySecrets } from '../store/delivery-secrets.ts';
import { conversationsList, conversationsSearch, conversationsShow } from './conversations.ts';
import { deliveriesList, deliveriesRedrive, deliveriesResend } from './deliveries.ts';
import { endpointsCommand } from './endpoints.ts';
import { exposureLines } from './exposure.ts';
import { conversationsQuery } from './query.ts';
import { CliError, DEFAULT_STACK_NAME, eventLine, onDataDir, out, redeliveryEventDetail, shownPath } from './shared.ts';
import { sign } from './sign.ts';
import { printable } from './table.ts';
import { tryRequest } from './try-request.ts';

/** `text` as lines of at most `width` characters, cut at spaces. */
function wrapped(text: string, width = 118): string {
  const lines: string[] = [];
  for (const word of text.split(' '))
    if (lines.length > 0 && lines.at(-1)!.length + 1 + word.length <= width) lines[lines.length - 1] += ` ${word}`;
    else lines.push(word);
  return lines.join('\n');
}

/** What the filter flags take: in the usage, and at the end of a command's --help when its lines show a filter. */
const FILTERS_TEXT = `Filters take one value or a comma-separated list: --source system or system/process, --type ${FILTER_TYPES.join(', ')}, --status ${FILTER_STATUSES.join(', ')} (a conversation's status or its delivery's); --key takes the Idempotency-Key or webhook-id a source sent (exact; --aws needs --source too).`;
const FILTERS = wrapped(FILTERS_TEXT);

const USAGE = `Usage: webhook-gateway <command>

  start                                 run the gateway locally (PORT, default 3000; LOCAL_S3_PORT 4569, HOST,
                                        LOCAL_DATA_DIR and every other variable: docs/configuration.md)
  conversations list [--source S] [--type T] [--status S] [--since ISO] [--until ISO] [--id ID] [--thread T] [--key K] [--limit N] [--json]
  conversations show <conversation_id> [--json]
  conversations show --key K [--source S] [--json]
                                        the conversation a request with that Idempotency-Key or webhook-id started
  conversations search <text> [--source S] [--type T] [--status S] [--since ISO] [--until ISO] [--id ID] [--thread T] [--limit N] [--json]
  conversations query "SELECT …" [--json | --csv]
  conversations query --named NAME [--param name=value]… [--json | --csv]
                                        SQL over every exported conversation (table conversations; without
                                        SQL it lists the columns and the named queries); --csv: a text cell
                                        that starts with = + - @, a tab, CR or NUL gets a leading ' so that a
                                        spreadsheet does not run it (numbers, dates as they are); --json: raw
  conversations list|show|search|query … --aws [--stack NAME] [--region R] [--profile P]
                                        the same on a deployed stack (Athena, export bucket, Express log groups)
  deliveries list [--state pending|dead|settled|all] [--type T] [--limit N] [--json]
  deliveries redrive <conversation_id> [--url URL] [--json]
  deliveries redrive --all [--since ISO] [--type T] [--dry-run [--limit N]] [--url URL] [--json]
                                        deliver what is still owed now (the plan first; --dry-run: only the plan,
                                        its count and oldest 50 or --limit N; --json: the results, or the plan's
                                        envelopes, as one array)
  deliveries resend <conversation_id> [--url URL] [--json]
                                        deliver a delivered conversation once more, under its webhook-id
  deliveries list|redrive|resend … --aws [--stack NAME] [--region R] [--profile P]
                                        the same against a deployed stack (its dead-letter queue, its exports)
  endpoints list [--json]               each type's receiver: URL, state (healthy, failing, paused, disabled),
                                        last success, failure streak, queued deliveries
  endpoints set <type> [--url URL|default] [--rate N/s|none] [--secret whsec_…] [--drop-previous-secret] [--json]
  endpoints pause <type> [--json] | resume <type> [--json]
                                        change a receiver at run time (no restart, no deploy); --json: the
                                        receiver after the change
  endpoints test <type> [--json]        POST one signed test delivery ("test": true) to the receiver and print its
                                        answer; no conversation, not retried, kept nowhere
  endpoints list|set|pause|resume|test … --aws [--stack NAME] [--region R] [--profile P]
                                        the same on a deployed stack (its deliveries table and signing secret)
  sign --secret whsec_… (--data JSON | --file PATH | --status CONVERSATION_ID) [--id ID] [--json]
                                        Standard Webhooks headers for one request (as curl -H arguments); the
                                        secret may come from WEBHOOK_SECRET instead of --secret
  help

${wrapped(`${FILTERS_TEXT} search and query run SQL on the exported analysis.json records: DuckDB over LOCAL_DATA_DIR (or the S3 of AWS_ENDPOINT_URL_S3) here, Athena with --aws. The running gateway also serves a web console at /console.`)}

--aws acts on a deployed stack (default ${DEFAULT_STACK_NAME}) through the AWS SDK: the credentials of --profile P
(a profile of ~/.aws/config or ~/.aws/credentials; else AWS_PROFILE, else AWS_ACCESS_KEY_ID…), in --region R (else
AWS_REGION, else the profile's region).

Local state lives in LOCAL_DATA_DIR (default: the repository's .data, wherever the command runs); the commands find
the gateway running on it (its gateway.json), whatever its PORT.`;

/**
 * A command (or a start) the file system refused (a full disk, a quota, a read-only folder): said as such, naming the
 * folder, rather than as an `Error: ENOSPC: …, write` that names no file (or a lock's temporary one) and reads as a
 * bug. The data folder unless the refused file is elsewhere (DELIVERY_SIGNING_SECRETS_FILE, …).
 */
function storageRefusal(error: unknown): string | null {
  const failure = storageFailureOf(error);
  if (!failure) return null;
  let dataDir: string | null = null;
  try {
    dataDir = resolveOptions().dataDir;
  } catch {
    // Settings this command never needed: the refused file, when named, says where.
  }
  const file = (error as NodeJS.ErrnoException).path;
  const inDataDir = dataDir !== null && (file === undefined || !path.relative(dataDir, file).startsWith('..'));
  const where = inDataDir ? `the data folder ${dataDir}` : file ? path.dirname(file) : 'the file system';
  const outOfFds = failure.code === 'EMFILE' || failure.code === 'ENFILE';
  const refused = outOfFds ? 'open' : failure.operation === 'read' ? 'read' : 'write';
  const fix =
    failure.code === 'ENOSPC' || failure.code === 'EDQUOT'
      ? 'free some space on its disk'
      : failure.code === 'EROFS'
        ? 'mount its file system read-write'
        : outOfFds
          ? `the ${failure.code === 'EMFILE' ? 'process' : 'system'} is out of file descriptors: raise the limit (ulimit -n) or close what holds them`
          : `let this user ${refused} it (its owner and permissions)`;
  return `${where} refused ${outOfFds ? 'an' : 'a'} ${refused} (${failure.message}): ${fix}, then run the command again`;
}

/**
 * The data folder itself cannot be a folder: LOCAL_DATA_DIR (or the default `.data`) names a file, or lies under one
 * (`LOCAL_DATA_DIR=/dev/null/x`). Said as such, rather than as a file in the data folder to delete (wrongKindMessage),
 * which would be a file of the user's, or of the system. Null for any other error.
 */
function dataDirNotAFolder(error: unknown): string | null {
  const code = (error as NodeJS.ErrnoException | null)?.code;
  if (code !== 'ENOTDIR' && code !== 'EEXIST') return null;
  let dataDir: string;
  try {
    dataDir = resolveOptions().dataDir;
  } catch {
    return null;
  }
  for (let entry = dataDir; ; entry = path.dirname(entry)) {
    let isFolder: boolean | null = null;
    try {
      isFolder = statSync(entry).isDirectory();
    } catch {
      // Not there (or under a file): the one above says.
    }
    if (isFolder === true) return null;
    if (isFolder === false) {
      const where = entry === dataDir ? 'is a file' : `lies under ${entry}, a file`;
      return `the data folder ${dataDir} (LOCAL_DATA_DIR) ${where}, not a folder: set LOCAL_DATA_DIR to a folder (made if missing)${entry === dataDir ? ', or move that file aside' : ''}`;
    }
    if (entry === path.dirname(entry)) return null;
  }
}

/**
 * A local command's data folder (LOCAL_DATA_DIR, or the default `.data`), made if missing before the command runs
 * (docs/configuration.md, "The local runtime"): one that cannot be (`/proc/x`, under a file, in a folder this user may
 * not write, on a read-only file system) is said in one line naming it and why, where Node's recursive mkdir looped
 * for ever on `/proc/x` (local/store/data-dir-mode.ts, makeDataDir). Settings this command refuses are its own to say.
 */
function prepareDataDir(writes: boolean): void {
  let dataDir: string;
  try {
    dataDir = resolveOptions().dataDir;
  } catch {
    return;
  }
  try {
    makeDataDir(dataDir);
    // The gateway writes there from its first step: a folder it cannot write (read-only, another user's) failed as
    // "Error: ENOENT: no such file or directory, mkdir '<folder>/logs'" (Node's recursive mkdir on EROFS).
    if (writes) accessSync(dataDir, constants.W_OK | constants.X_OK);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.syscall === 'access') {
      const why =
        e.code === 'EROFS' ? 'is on a read-only file system (EROFS)' : `does not let this user write it (${e.code})`;
      throw new CliError(
        `the data folder ${dataDir} (LOCAL_DATA_DIR) ${why}: the gateway keeps its state there; set LOCAL_DATA_DIR to a folder this user can write (made if missing)`,
      );
    }
    const folder = e.path ? path.dirname(e.path) : path.dirname(dataDir);
    const why =
      e.code === 'EACCES' || e.code === 'EPERM'
        ? `${folder} does not let this user make folders in it (${e.code})`
        : e.code === 'EROFS'
          ? `${folder} is on a read-only file system (EROFS)`
          : e.code === 'ENOSPC' || e.code === 'EDQUOT'
            ? `the disk of ${folder} is full (${e.code})`
            : e.code === 'ENOENT'
              ? `${folder} takes no new folders (ENOENT)`
              : `${folder} refused it (${e.message})`;
    throw new CliError(
      dataDirNotAFolder(error) ??
        `the data folder ${dataDir} (LOCAL_DATA_DIR) cannot be made: ${why}; set LOCAL_DATA_DIR to a folder this user can write (made if missing)`,
    );
  }
}

/**
 * `start` takes no arguments. Before, each was ignored: `start --port 4000` (or `npm start -- --port 4000`) started on
 * PORT, 3000 by default, as if it had been taken. The gateway's settings are environment variables only.
 */
function refuseStartArguments(args: string[]): void {
  if (args.length > 0)
    throw new CliError(
      `start takes no arguments, got "${printable(args.join(' '))}": its settings are environment variables, e.g. PORT=4000 npx webhook-gateway start (every variable: docs/configuration.md)`,
    );
}

async function start(): Promise<number> {
  const { startGateway } = await import('../server/gateway.ts');
  const { divertHandlerLogs } = await import('../server/log-sink.ts');
  let options: GatewayOptions;
  try {
    options = resolveOptions();
  } catch (error) {
    throw new CliError((error as Error).message);
  }
  // Else the second listen fails as "port … is already in use: stop the other process", which is this one.
  if (options.port !== 0 && options.port === options.s3Port && !process.env.AWS_ENDPOINT_URL_S3)
    throw new CliError(
      `PORT and LOCAL_S3_PORT are both ${options.port}: the gateway and its embedded S3 each need a port of their own; set one of them to another (0 picks a free one)`,
    );
  const logFile = divertHandlerLogs(options.dataDir);
  // Taken before the start: a Ctrl-C while it recovers what the last stop cut (or prints its banner) stops it as any
  // Ctrl-C does, the executions under way finished, rather than by the signal's default (a crash the next start
  // recovers again). Recovery takes up no other (the next start does); a second Ctrl-C stops at once.
  let stopping = false;
  let gateway: RunningGateway | undefined;
  const stopAsked = new Promise<void>((resolve) => {
    const stop = () => {
      stopping = true;
      resolve();
    };
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    whenOrphanedByNpm(stop);
  });
  const now = () => {
    out('stopped at once');
    process.exit(130);
  };
  void stopAsked.then(() => {
    process.once('SIGINT', now);
    process.once('SIGTERM', now);
    if (!gateway)
      out(
        'stopping: the start first finishes what it has under way (the interrupted executions it is recovering; the next start recovers the others); Ctrl-C again stops at once…',
      );
  });
  try {
    gateway = await startGateway({
      ...options,
      stopRequested: () => stopping,
      onRedelivery: (r) =>
        out(eventLine(new Date().toISOString(), 'redelivery', r.conversation_id, redeliveryEventDetail(r))),
      onSweep: (swept) =>
        out(
          eventLine(
            new Date().toISOString(),
            'retention',
            `older than LOCAL_HISTORY_DAYS=${options.historyDays}: ${swept.histories} conversation histories, ${swept.envelopes} settled envelopes, ${swept.logFiles} log files removed; ${swept.keys} expired idempotency keys, ${swept.statuses} expired statuses, ${swept.threads} unused threads, ${swept.threadTurns} expired thread turns, ${swept.uploads} incomplete multipart uploads${swept.damaged.length > 0 ? `; ${swept.damaged.length} damaged idempotency key or status file(s) (no record in them) last written longer ago than such a record lives, removed: ${swept.damaged.join(', ')}` : ''}`,
          ),
        ),
      onRecovery: (recovered, ms, when) => {
        for (const r of recovered) out(eventLine(new Date().toISOString(), 'recovered', ...recoveryFields(r)));
        if (recovered.length > 0 && when !== 'running')
          out(`${recovered.length} executions cut by the last stop were recovered from the journal in ${ms} ms`);
      },
      onExecution: (summary) =>
        out(
          eventLine(
            new Date().toISOString(),
            summary.http_status,
            summary.conversation_id ?? '(rejected)',
            summary.detail,
            `${summary.duration_ms} ms`,
          ),
        ),
    });
  } catch (error) {
    if (error instanceof RecoveryStopped) {
      out(`stopped: ${error.left} interrupted execution(s) left for the next start to recover`);
      return 0;
    }
    const e = error as NodeJS.ErrnoException & { port?: number };
    if (error instanceof DataDirInUseError || error instanceof SettingsError) throw new CliError(error.message);
    if (e.code === 'EADDRINUSE') {
      // Which of the two: a second gateway started with another PORT alone meets the first one's embedded S3.
      const [variable, what] = e.port === options.s3Port ? ['LOCAL_S3_PORT', ' (the embedded S3)'] : ['PORT', ''];
      throw new CliError(
        `${variable} ${e.port}${what} is already in use: stop the other process, or set ${variable} to another port (0 picks a free one)`,
      );
    }
    if (e.code === undefined && error instanceof Error && error.constructor === Error)
      throw new CliError(error.message);
    throw error;
  }
  if (stopping) {
    // Asked while it started: no banner for a gateway that stops.
    await gateway.close();
    out('stopped');
    return 0;
  }
  const rel = shownPath;
  out(`webhook-gateway (local) listening on ${gateway.url}`);
  const keys = parseApiKeys(process.env.API_KEYS);
  for (const line of exposureLines(
    options.host,
    { requireSigned: gateway.settings.requireSignedWebhooks, apiKeys: keys.required },
    options.publicUrl ?? null,
  ))
    out(line);
  out(
    `  POST ${gateway.url}/webhook   one conversation = one run of statemachine/conversation.asl.json (aws-local-stepfunctions)`,
  );
  out(`  GET  ${gateway.url}/health`);
  out(`  console ${gateway.url}/console   recent conversations, timelines, exports, redrive (loopback only)`);
  out(
    `  S3      ${gateway.s3Endpoint}  bucket ${gateway.bucket}  (files under ${rel(path.join(options.dataDir, 's3'))})`,
  );
  if (!gateway.settings.exportEnabled)
    out('  exports OFF (ENABLE_CONVERSATION_EXPORT=false): nothing is written to S3; the history below keeps each run');
  out(
    `  agent   ${gateway.agentEndpoint} function ${gateway.agentFunctionName}` +
      (gateway.agentEndpoint === gateway.url ? '  (SAMPLE agent built into this server)' : ''),
  );
  for (const type of WEBHOOK_TYPES) {
    const url = gateway.settings.deliveryUrls[type];
    out(`  deliver ${type.padEnd(14)} → ${url ? shownDeliveryUrl(url) : url}`);
  }
  // A type without a secret is delivered unsigned: said here, the one place a user reads before the first delivery.
  // Not known here (null): the secret of DELIVERY_SIGNING_SECRETS_ARN, read by Deliver.
  const deliverySecrets = gateway.deliverySecretsFile
    ? await readDeliverySecrets(gateway.deliverySecretsFile)
    : process.env.DELIVERY_SIGNING_SECRETS
      ? parseSecretsBySource(process.env.DELIVERY_SIGNING_SECRETS, 'DELIVERY_SIGNING_SECRETS')
      : null;
  const unsigned = WEBHOOK_TYPES.filter((type) => deliverySecrets && !deliverySecrets[type]?.length);
  out(
    `  signing deliveries with the secrets in ${gateway.deliverySecretsFile ? rel(gateway.deliverySecretsFile) : 'DELIVERY_SIGNING_SECRETS'}` +
      (unsigned.length > 0 ? ` (none for ${unsigned.join(', ')}: delivered unsigned)` : '') +
      `   inbound signatures: ${process.env.INBOUND_WEBHOOK_SECRETS ? 'required for the sources in INBOUND_WEBHOOK_SECRETS' : 'none configured'}${gateway.settings.requireSignedWebhooks ? ' (unsigned refused)' : ''}`,
  );
  out(
    `  history ${rel(gateway.executions.dir)}   failed deliveries ${rel(gateway.failedDeliveries.dir)}   handler logs ${logFile.startsWith('(') ? logFile : rel(logFile)}`,
  );
  out('');
  const apiKeys = JSON.parse(keys.sourceApiKeyIds) as Record<string, string>;
  for (const line of tryRequest(gateway.url, {
    inboundSecrets: parseInboundSecrets(process.env.INBOUND_WEBHOOK_SECRETS),
    requireSigned: gateway.settings.requireSignedWebhooks,
    apiKeySources: Object.values(apiKeys),
  }))
    out(line);
  out(`Then: ${onDataDir('npx webhook-gateway conversations list', options.dataDir)}   ·   Ctrl-C stops everything.`);
  const lost = await Promise.race([stopAsked.then(() => null), gateway.dataDirLost]);
  if (lost !== null) {
    // Another gateway serves this data folder now: nothing more is written to it. What was in flight stays in its
    // journal, recovered as after a crash (docs/operations.md, "Processes in other containers").
    out(`stopped at once: ${lost.replace(/; stop this gateway$/, '')}; what was in flight is left to the journal`);
    process.exit(1);
  }
  out(stoppingLine(gateway.inFlight(), new Date()));
  await gateway.close();
  // Said, as a stop asked during the start says it: the conversations in flight have finished, nothing is left running.
  out('stopped');
  return 0;
}

/**
 * What Ctrl-C prints before the gateway waits for its conversations in flight: how many, and the latest time their
 * budgets let them end by (an asynchronous one may be given minutes), so that the wait does not look like a hang.
 */
export function stoppingLine(inFlight: InFlight, now: Date): string {
  if (inFlight.count === 0) return 'stopping: no conversation in flight…';
  const what =
    inFlight.count === 1
      ? 'the conversation in flight finishes'
      : `the ${inFlight.count} conversations in flight finish`;
  const again = 'Ctrl-C again stops at once (the next start recovers them)…';
  if (inFlight.endsBy === null) return `stopping: ${what} first; ${again}`;
  const seconds = Math.max(0, Math.ceil((inFlight.endsBy.getTime() - now.getTime()) / 1000));
  const wait = seconds >= 60 ? `${Math.floor(seconds / 60)} min ${seconds % 60} s` : `${seconds} s`;
  return `stopping: ${what} first, by ${inFlight.endsBy.toTimeString().slice(0, 8)} at the latest (in ${wait}); ${again}`;
}

/**
 * Under `npm start` this process is the child of npm's shell. npm passes a SIGTERM (a service manager stopping it,
 * `timeout`, a script's `kill`) on to that shell, which ends without passing it on: the gateway would run on
 * orphaned, holding its port and its data folder, and the next start would be refused. So, started by npm, it stops
 * as on SIGTERM once its parent is gone. Started otherwise (`npx webhook-gateway start`, `node bin/…`, nohup) it
 * does not watch: outliving its shell may be what was asked. Ctrl-C reaches it directly (the terminal's process
 * group).
 */
function whenOrphanedByNpm(stop: () => void): void {
  if (process.env.npm_lifecycle_event !== 'start') return;
  const parent = process.ppid;
  const watch = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(watch);
    out('npm is gone: stopping as on SIGTERM');
    stop();
  }, 500);
  watch.unref();
}

const cutBy = (r: RecoveredExecution) =>
  r.storage_refused ? ` (cut by the data folder refusing a write: ${r.storage_refused})` : '';

/** A `recovered` line's fields after its time (docs/operations.md, "After a crash"). */
export function recoveryFields(r: RecoveredExecution, now = new Date()): string[] {
  if (r.outcome === 'not_accepted')
    return [
      `(request ${r.execution_name})`,
      `not accepted: cut before it was validated, nothing ran${r.key_freed ? '; its Idempotency-Key is free again' : ''}${r.status_removed ? `; the status it had written for ${r.status_removed} (never sent to the caller) is removed` : ''}`,
    ];
  if (r.redelivery) {
    const how =
      r.outcome === 'interrupted'
        ? `cut during its attempt, shown as interrupted${r.redelivery === 'resend' ? '' : ', its envelope as it was'}`
        : r.outcome === 'failed'
          ? r.failed_when_finished
            ? 'finished, and failed'
            : 'had failed before the crash'
          : 'finished';
    return [
      r.conversation_id ?? '',
      `${r.redelivery} ${r.execution_name} ${how}${cutBy(r)}: ${r.status}, delivery ${r.delivery_status}${owedAfter(r, now)}`,
    ];
  }
  if (r.outcome === 'set_aside' && r.set_aside)
    return [
      r.conversation_id ?? `(execution ${r.execution_name})`,
      `set aside, its recovery failed (${r.set_aside.why}): its journal lines are in ${shownPath(r.set_aside.file)}; move that file into ${shownPath(path.dirname(path.dirname(r.set_aside.file)))} to retry at the next start, or delete it to drop it`,
    ];
  if (r.outcome === 'restarted' && r.journal_lost)
    return [
      r.conversation_id ?? '',
      `asynchronous, its run's journal lines lost (the journal cut: a power cut or a disk fault) though its accept had started it: started again (restart ${r.restarts} of ${MAX_RESTARTS}), its agent called again`,
    ];
  if (r.outcome === 'restarted')
    return [
      r.conversation_id ?? '',
      `asynchronous, cut before its agent's answer was recorded${cutBy(r)}: started again (restart ${r.restarts} of ${MAX_RESTARTS}), its agent called again`,
    ];
  const how =
    r.outcome !== 'interrupted'
      ? 'finished'
      : r.restarts
        ? `closed as interrupted, not started again: its run was started again ${r.restarts} times, each cut before its agent's answer was recorded (look into what stops the gateway while it runs)`
        : 'closed as interrupted';
  return [r.conversation_id ?? '', `${how}${cutBy(r)}: ${r.status}, delivery ${r.delivery_status}`];
}

/**
 * What a recovered redelivery run leaves to do, whoever started it: a resend that did not finish is not repeated; the
 * envelope of a scheduled run or a redrive says what it owes and when it is due for the schedule, or that it is dead
 * (the schedule never tries it again: a redriven dead envelope stays dead).
 */
function owedAfter(r: RecoveredExecution, now: Date): string {
  const id = r.conversation_id ?? '';
  if (r.redelivery === 'resend')
    return r.outcome === 'resumed'
      ? ''
      : `; not repeated: deliveries resend ${id} sends it again if the receiver did not get it`;
  const envelope = r.envelope;
  if (!envelope || envelope.state === 'settled') return '';
  if (envelope.state === 'dead')
    return `; its envelope is dead (${envelope.dead_reason ?? 'no reason kept'}), never tried again by the schedule: deliveries redrive ${id} tries it`;
  const owed = envelope.owed === 'export' ? 'only the export' : 'the delivery';
  const due = envelope.next_due_at;
  const when = due === null || Date.parse(due) <= now.getTime() ? 'due now' : `due at ${due}`;
  const runs = envelope.failed_runs ?? 0;
  const failed =
    runs > 0 ? ` (${runs} failed run${runs === 1 ? '' : 's'} in a row; dead after ${MAX_FAILED_RUNS})` : '';
  return `; its envelope owes ${owed}, ${when} for the schedule${failed}`;
}

/**
 * `<command> [sub] --help` (or `help <command> [sub]`): the usage lines of that command (each with its continuation
 * lines), all of them when nothing matches. Only flags before a `--` count: `search -- --help` searches for it.
 */
function helpFor(words: string[]): string {
  const blocks: string[][] = [];
  for (const line of USAGE.split('\n')) {
    if (/^ {2}\S/.test(line)) blocks.push([line]);
    else if (/^ {3,}\S/.test(line) && blocks.length > 0) blocks.at(-1)!.push(line);
  }
  const [command, sub] = words;
  const heads = blocks.map(([head]) => head!.trim().split(/\s+/));
  // The subcommands a line shows: its second word (`list|show`), and each after a ` | ` (`pause <type> | resume <type>`).
  const subsOf = (head: string[]) => head.flatMap((word, i) => (i === 1 || head[i - 1] === '|' ? word.split('|') : []));
  for (const withSub of sub === undefined ? [false] : [true, false]) {
    const matching = blocks.filter(
      (_, i) => heads[i]![0] === command && (!withSub || subsOf(heads[i]!).includes(sub!)),
    );
    if (matching.length > 0) return ['Usage:', ...matching.flat()].join('\n');
  }
  return USAGE;
}

/**
 * A command's --help: its usage lines, then what the filters take when they are the conversation filters
 * (`[--source S] [--type T] [--status S]`; `deliveries list` takes --type alone, with values its own error names).
 */
function commandHelp(words: string[]): string {
  const usage = helpFor(words);
  return usage !== USAGE && /\[--status S\]/.test(usage) ? `${usage}\n\n${FILTERS}` : usage;
}

/**
 * node:util's "Unknown option '--statu'. To specify a positional argument starting with a '-', place it … after '--'"
 * reads a mistyped flag as text: name the options the command takes instead, from its usage lines (`words` as for
 * helpFor). Only `conversations search` takes text, which may start with `-`: it keeps the hint.
 */
function unknownOption(message: string, words: string[]): string {
  const option = /'([^']+)'/.exec(message)?.[1] ?? '';
  const options = new Set(helpFor(words).match(/--[a-z][a-z-]*/g));
  const text =
    words[0] === 'conversations' && words[1] === 'search'
      ? `; text that starts with "-" goes after --: conversations search -- ${option}`
      : words[0] === 'conversations' && words[1] === 'query'
        ? `; SQL that starts with "-" (a -- comment) goes after --: conversations query -- "<SQL>"`
        : '';
  // One line: SQL or text taken for an option may span lines (`$(cat query.sql)`).
  return `unknown option ${printable(option)}: this command takes ${[...options].join(', ')}${text}`;
}

/**
 * node:util's "Option '--limit <value>' argument missing", "Option '--json' does not take an argument" and its
 * three-line "argument is ambiguous … use '--limit=-XYZ'" (a value that starts with "-", or a flag where the value was
 * forgotten) in the command's words: the flag as its usage lines write it (`words` as for helpFor).
 */
function optionValueMessage(message: string, flags: string[], words: string[]): string {
  const flag = /'(--[a-z][a-z-]*)/.exec(message)?.[1] ?? '';
  if (message.includes('does not take an argument')) return `${flag} takes no value`;
  const form = new RegExp(`${flag} [^\\s\\]]+`).exec(helpFor(words))?.[0] ?? `${flag} <value>`;
  const next = flags[flags.indexOf(flag) + 1];
  // A value that starts with "-" (not a forgotten value before the next flag) must be written with "=".
  if (!message.includes('ambiguous') || next === undefined || next.startsWith('--'))
    return `${flag} needs a value: ${form}`;
  return `${flag} needs a value: ${form} ("${next}" reads as an option; if it is the value, write ${flag}=${next})`;
}

/** Flags that take one comma-separated list (conversation-filters.ts): a repeated one is most likely meant as a list. */
const LIST_FLAGS = new Set(['source', 'type', 'status']);

/**
 * A flag given twice would keep only its last value (node:util parseArgs), silently: `--type deal_analysis --type
 * general` would list general alone. Refused, naming the flag; only `--param` may repeat.
 */
function refuseRepeatedFlags(flags: string[]): void {
  const seen = new Set<string>();
  for (const arg of flags) {
    const name = /^--([a-z][a-z-]*)(=|$)/.exec(arg)?.[1];
    if (name === undefined || name === 'param') continue;
    if (seen.has(name)) {
      const list = LIST_FLAGS.has(name) ? ` (for several, one comma-separated list: --${name} a,b)` : '';
      throw new CliError(`--${name} is given twice: give it once${list}`);
    }
    seen.add(name);
  }
}

/**
 * Help asked for a command there is none of (`help bogus`, `bogus --help`): said as the command alone is said, on
 * stderr with the usage, exit 2 (before: the whole usage on stdout, exit 0, as if the command existed). Null for a
 * command the usage names (or none).
 */
function unknownCommand(word: string | undefined): number | null {
  if (word === undefined || ['start', 'conversations', 'deliveries', 'endpoints', 'sign', 'help'].includes(word))
    return null;
  process.stderr.write(`webhook-gateway: unknown command "${printable(word)}"\n\n${USAGE}\n`);
  return 2;
}

const SUBCOMMANDS: Record<string, string> = {
  conversations: 'list, show, search or query',
  deliveries: 'list, redrive or resend',
  endpoints: 'list, set, pause, resume or test',
};

export async function main(argv: string[]): Promise<number> {
  const [command, sub, ...rest] = argv;
  const flags = argv.includes('--') ? argv.slice(0, argv.indexOf('--')) : argv;
  if (
    command !== undefined &&
    command !== '--help' &&
    command !== '-h' &&
    (flags.includes('--help') || flags.includes('-h'))
  ) {
    const words = flags.filter((a) => !a.startsWith('-'));
    const unknown = unknownCommand(words[0]);
    if (unknown !== null) return unknown;
    out(commandHelp(words));
    return 0;
  }
  if (command === 'help' && sub !== undefined) {
    const unknown = unknownCommand(argv.slice(1).find((a) => !a.startsWith('-')));
    if (unknown !== null) return unknown;
    out(commandHelp(argv.slice(1)));
    return 0;
  }
  try {
    refuseRepeatedFlags(flags);
    // Refused before its data folder is made.
    if (command === 'start') refuseStartArguments(argv.slice(1));
    if (['start', 'conversations', 'deliveries', 'endpoints'].includes(command ?? '') && !flags.includes('--aws'))
      prepareDataDir(command === 'start');
    if (command === 'start') return await start();
    if (command === 'conversations' && sub === 'list') return await conversationsList(rest);
    if (command === 'conversations' && sub === 'show') return await conversationsShow(rest);
    if (command === 'conversations' && sub === 'search') return await conversationsSearch(rest);
    if (command === 'conversations' && sub === 'query') return await conversationsQuery(rest);
    if (command === 'deliveries' && sub === 'list') return await deliveriesList(rest);
    if (command === 'deliveries' && sub === 'redrive') return await deliveriesRedrive(rest);
    if (command === 'deliveries' && sub === 'resend') return await deliveriesResend(rest);
    if (command === 'endpoints' && ['list', 'set', 'pause', 'resume', 'test'].includes(sub ?? ''))
      return await endpointsCommand(sub!, rest);
    if (command === 'sign') return await sign(argv.slice(1));
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      out(USAGE);
      return 0;
    }
    const subs = SUBCOMMANDS[command];
    if (subs !== undefined) {
      // A command group without (or with an unknown) subcommand: name the ones it takes and show only their lines.
      const got = sub === undefined ? '' : `; got "${sub}"`;
      process.stderr.write(`webhook-gateway: ${command} takes ${subs}${got}\n\n${helpFor([command])}\n`);
      return 2;
    }
    process.stderr.write(`webhook-gateway: unknown command "${argv.join(' ')}"\n\n${USAGE}\n`);
    return 2;
  } catch (error) {
    // A lock another process held all the while (a gateway or a command in another container): nothing was changed,
    // its line says so and to try again; exit code 75 (EX_TEMPFAIL), as a redrive that can be made again.
    if (error instanceof LockBusyError) {
      process.stderr.write(`webhook-gateway: ${error.message}\n`);
      return 75;
    }
    const e = error as Error & { code?: string };
    const words = flags.filter((a) => !a.startsWith('-'));
    const message =
      e.code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION'
        ? unknownOption(e.message, words)
        : e.code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE'
          ? optionValueMessage(e.message, flags, words)
          : error instanceof CliError || error instanceof SettingsError || e.code?.startsWith('ERR_PARSE_ARGS_')
            ? e.message
            : error instanceof UnreadableFileError
              ? damagedFileMessage(error.message)
              : (dataDirNotAFolder(error) ??
                wrongKindMessage(error) ??
                storageRefusal(error) ??
                `${e.name}: ${e.message}`);
    process.stderr.write(`webhook-gateway: ${message}\n`);
    return error instanceof CliError ? error.exitCode : 1;
  }
}
