/**
 * `webhook-gateway endpoints list | set | pause | resume` (docs/operations.md#receivers): the receivers of the four
 * webhook types as run-time configuration. Locally the endpoint store's files under LOCAL_DATA_DIR/deliveries (the
 * running gateway reads them on its next delivery: no restart), with `--aws` the deployed stack's deliveries table.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { WEBHOOK_TYPES, type WebhookType } from '../../functions/domain/conversation.ts';
import { unsafeDeliveryUrl } from '../../functions/domain/delivery.ts';
import { shownDeliveryUrl } from '../../functions/domain/delivery-url.ts';
import { type BreakerPolicy, type EndpointView, newUrlNote, parseRate } from '../../functions/domain/endpoints.ts';
import { secretsFingerprint } from '../../functions/domain/secrets-fingerprint.ts';
import { rotatedSecrets } from '../../functions/domain/signatures.ts';
import { type EndpointChange, FileEndpointStore } from '../../functions/shared/endpoint-store.ts';
import { LockBusyError, type LockWait } from '../../functions/shared/local-files.ts';
import { settings } from '../../functions/shared/settings.ts';
import { writerState } from '../../functions/shared/writers.ts';
import { notAWebhookType, webhookTypeNamed } from '../history/conversation-filters.ts';
import { receiverRows, type UnreadableReceiver } from '../history/endpoints.ts';
import { resolveOptions } from '../server/config.ts';
import {
  changeLocalDeliverySecrets,
  deliverySecretsFileOf,
  readDeliverySecrets,
  secretsMadeAtFirstStart,
} from '../store/delivery-secrets.ts';
import { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { readGatewayRuntime } from '../store/gateway-runtime.ts';
import { removeCopiesOfGoneWriters } from '../store/json-files.ts';
import { type EndpointEdit, editedSecrets, printEndpoints } from './endpoint-table.ts';
import { printTestDelivery } from './endpoint-test.ts';
import { AWS_OPTIONS, awsRequested, CliError, gatewayUrl, noMoreThanOne, note, out, shownPath } from './shared.ts';

function webhookTypeArg(value: string | undefined, command: string): WebhookType {
  if (!value) throw new CliError(`endpoints ${command} needs a webhook type: ${WEBHOOK_TYPES.join(', ')}`);
  const type = webhookTypeNamed(value);
  if (type === null) throw new CliError(notAWebhookType(value));
  return type;
}

/** What `set` changed in the receiver's file, in words, or null when it changed nothing there. */
function receiverChange(edit: EndpointEdit): string | null {
  const parts = [
    edit.change.url !== undefined
      ? `URL ${edit.change.url === null ? 'back to the deployed one' : shownDeliveryUrl(edit.change.url)}`
      : null,
    edit.change.rate_per_second !== undefined ? `rate ${edit.change.rate_per_second ?? 'none'}/s` : null,
  ].filter(Boolean);
  return parts.length > 0 ? parts.join(', ') : null;
}

/** `set`'s flags as a change; refused with the flag's name when a value cannot be used. */
function parseEdit(values: {
  url?: string | undefined;
  rate?: string | undefined;
  secret?: string | undefined;
  'drop-previous-secret'?: boolean | undefined;
}): EndpointEdit {
  const change: EndpointChange = {};
  if (values.url !== undefined) {
    if (values.url === 'default') change.url = null;
    else {
      const unsafe = unsafeDeliveryUrl(values.url);
      if (unsafe) throw new CliError(`--url: ${unsafe}`);
      change.url = values.url;
    }
  }
  if (values.rate !== undefined) {
    try {
      change.rate_per_second = parseRate(values.rate);
    } catch (error) {
      throw new CliError(`--rate: ${(error as Error).message}`);
    }
  }
  const edit: EndpointEdit = { change, dropPreviousSecret: values['drop-previous-secret'] ?? false };
  if (values.secret !== undefined) {
    try {
      rotatedSecrets([], values.secret, false);
    } catch (error) {
      throw new CliError(`--secret: ${(error as Error).message.replace(/^the new secret: /, '')}`);
    }
    edit.secret = values.secret;
  }
  if (Object.keys(change).length === 0 && edit.secret === undefined && !edit.dropPreviousSecret)
    throw new CliError('endpoints set needs --url, --rate, --secret or --drop-previous-secret');
  return edit;
}

/** The local stores of LOCAL_DATA_DIR. */
function local() {
  const { dataDir } = resolveOptions();
  return {
    dataDir,
    store: new FileEndpointStore(path.join(dataDir, 'deliveries')),
    failedDeliveries: new LocalFailedDeliveryStore(dataDir),
  };
}

/**
 * The deployed URL of each type locally: what the running gateway was started with (its variable, else its built-in
 * receiver); without a running gateway's record, this shell's variable, else the built-in receiver.
 */
async function localDeployedUrls(dataDir: string): Promise<Record<WebhookType, string>> {
  const started = (await readGatewayRuntime(dataDir))?.delivery_urls;
  const configured = settings().deliveryUrls;
  const base = await gatewayUrl(undefined, dataDir);
  return Object.fromEntries(
    WEBHOOK_TYPES.map((type) => [
      type,
      (started ? started[type] : configured[type]) ?? `${base}/local/receiver/${type}`,
    ]),
  ) as Record<WebhookType, string>;
}

/**
 * The breaker receivers are judged by: the running gateway's (what it was started with), unless that gateway is
 * this very process (whose settings are its own) or none runs; then this process's settings.
 */
async function localBreaker(dataDir: string): Promise<BreakerPolicy> {
  const running = await readGatewayRuntime(dataDir);
  const itself = running && writerState({ pid: running.pid, host: running.host ?? null }) === 'this process';
  return running?.breaker && !itself ? running.breaker : settings().breaker;
}

/** `sub`: list, set, pause, resume or test (main.ts answers any other as an unknown subcommand of a group). */
export async function endpointsCommand(sub: string, args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      json: { type: 'boolean' },
      url: { type: 'string' },
      rate: { type: 'string' },
      secret: { type: 'string' },
      'drop-previous-secret': { type: 'boolean' },
      ...AWS_OPTIONS,
    },
  });
  if (sub === 'list' && positionals.length > 0)
    throw new CliError(`endpoints list takes no arguments, got "${positionals.join(' ')}" (it lists every type)`);
  noMoreThanOne(positionals, `endpoints ${sub}`, 'webhook type');
  const type = sub === 'list' ? null : webhookTypeArg(positionals[0], sub);
  const edit = sub === 'set' ? parseEdit(values) : null;
  if (sub !== 'set' && (values.url ?? values.rate ?? values.secret ?? values['drop-previous-secret']) !== undefined)
    throw new CliError(`--url, --rate and --secret go with endpoints set, not endpoints ${sub}`);
  if (awsRequested(values)) {
    const { awsEndpoints } = await import('./aws/endpoints.ts');
    const { withAws } = await import('./aws/stack.ts');
    return withAws(values, (clients, stack) =>
      awsEndpoints(clients, stack, { sub, type, edit, json: values.json ?? false }),
    );
  }
  const { dataDir, store, failedDeliveries } = local();
  // What an `endpoints set | pause | resume` killed in the middle left aside (a copy of the receiver's settings) goes
  // at the next one, not a day later at a gateway's start (docs/operations.md, "Local history retention").
  if (sub !== 'list' && sub !== 'test') await removeCopiesOfGoneWriters(store.dir);
  const now = new Date();
  const running = await readGatewayRuntime(dataDir);
  // The secrets the running gateway signs with (none known here when it signs with DELIVERY_SIGNING_SECRETS).
  const signingFile =
    running && running.delivery_secrets_file !== undefined
      ? running.delivery_secrets_file
      : deliverySecretsFileOf(dataDir);
  if (sub === 'test') {
    const { config } = await store.get(type!);
    const secrets = await readDeliverySecrets(signingFile);
    const url = config.url ?? (await localDeployedUrls(dataDir))[type!];
    // The built-in receiver is the gateway's own route: with no gateway on this folder, nothing answers there.
    const builtIn = !running && url.endsWith(`/local/receiver/${type}`);
    return printTestDelivery(type!, url, secrets && (secrets[type!] ?? []), {
      json: values.json ?? false,
      timeoutMs: settings().deliveryTimeoutMs,
      ...(builtIn && {
        notTaken: `its URL is the built-in receiver of a gateway not running on ${dataDir}: start it (npm start)`,
      }),
    });
  }
  // The file the running gateway signs with (its DELIVERY_SIGNING_SECRETS_FILE), else the one this shell names.
  const chosen = running?.delivery_secrets_file ?? deliverySecretsFileOf(dataDir) ?? undefined;
  const rotating = edit !== null && (edit.secret !== undefined || edit.dropPreviousSecret);
  // Every part of a change is checked before any is written: a secret the edit refuses (a rotation under way) leaves
  // the URL and rate as they were. A file not there yet has no secret to refuse (it is made below).
  if (rotating)
    editedSecrets(
      type!,
      (await readDeliverySecrets(chosen ?? deliverySecretsFileOf(dataDir, {})))?.[type!] ?? [],
      edit,
    );
  // A lock another container's writer holds, or one naming a live process here that does not keep it (a pid reused
  // after a restart), is waited on up to 11 s (taken over if its writer was killed): said once.
  const wait: LockWait = {
    notice: (lock, pid, waitMs, kind) =>
      note(
        kind === 'foreign'
          ? `webhook-gateway: ${lock} is held by pid ${pid} of another pid namespace or host (a container sharing the folder): waiting up to ${Math.ceil(waitMs / 1000)} s for it (one left by a killed writer is taken over once 10 s old)`
          : `webhook-gateway: ${lock} names pid ${pid}, which runs but does not keep the lock fresh as its holder would (its pid reused after a crash or a restart): waiting up to ${Math.ceil(waitMs / 1000)} s, until it is 10 s old and taken over`,
      ),
  };
  if (sub === 'pause') await store.configure(type!, { paused: true }, now, undefined, wait);
  if (sub === 'resume') {
    // A receiver held only by its Retry-After: what a resume releases, said (docs/operations.md, "Retry-After").
    const heldUntil = (await store.get(type!).catch(() => null))?.health.retry_after_until ?? null;
    await store.resume(type!, now, wait);
    if (heldUntil && Date.parse(heldUntil) > now.getTime())
      (values.json ? note : out)(
        `${type}: its Retry-After (nothing before ${heldUntil}) is forgotten: its queued deliveries go out when the schedule finds them due, a redrive or resend is sent at once; another 429 or 503 with a Retry-After holds them again`,
      );
  }
  if (edit) {
    if (Object.keys(edit.change).length > 0) {
      const deployed = edit.change.url !== undefined ? (await localDeployedUrls(dataDir))[type!] : undefined;
      const configured = await store.configure(type!, edit.change, now, deployed, wait);
      // On stderr with --json, so stdout stays one JSON document.
      if (configured.new_url) (values.json ? note : out)(newUrlNote(configured));
    }
    if (rotating) {
      let changed: { file: string; secrets: string[] };
      try {
        changed = await changeLocalDeliverySecrets(
          dataDir,
          type!,
          (current) => editedSecrets(type!, current, edit),
          chosen,
          wait,
        );
      } catch (error) {
        const made = receiverChange(edit);
        if (!made) throw error;
        // The receiver's file was changed above: said, as `--aws` says it, rather than an error that reads as if
        // nothing was done. A secrets lock another process kept all the while is exit code 75, as every busy lock:
        // the same command again makes the rest (its URL and rate are set as they already are).
        if (error instanceof LockBusyError)
          throw new CliError(
            `${type}: the change was made (${made}), but its signing secrets were not changed: ${error.held}; run the same command again to change them`,
            75,
          );
        throw new CliError(
          `${type}: the change was made (${made}), but its signing secrets were not changed: ${(error as Error).message}`,
        );
      }
      const { file, secrets } = changed;
      // Since when these secrets sign (endpoints list shows it during a rotation); read before, whether any
      // `--secret` was recorded on this receiver.
      const before = await store.get(type!).catch(() => null);
      // A damaged receiver file (named below) only leaves the time unknown: the secrets were changed.
      await store.markSecrets(type!, secretsFingerprint(secrets), now).catch(() => undefined);
      // The first --secret on the data folder's file: the previous one is the secret the gateway made at its first
      // start (one per type), which is why a first rotation already signs with two.
      const generated =
        secrets.length === 2 && file === deliverySecretsFileOf(dataDir, {}) && !before?.config.secrets_changed_at
          ? `; the previous one is the secret the gateway made for ${type} at its first start`
          : '';
      // On stderr with --json, so stdout stays one JSON document.
      const say = values.json ? note : out;
      say(
        `${type} deliveries are signed with ${secrets.length === 2 ? `two secrets (the new one first${generated}): both signatures are on the wire until --drop-previous-secret` : 'one secret'} (${shownPath(file)})`,
      );
      if (running?.delivery_secrets_file === null)
        say('note: the running gateway signs with DELIVERY_SIGNING_SECRETS, not with this file');
      else if (!running && process.env.DELIVERY_SIGNING_SECRETS)
        say('note: DELIVERY_SIGNING_SECRETS is set here; a gateway started with it signs with that instead');
    }
  }
  // The queued counts from the envelopes' summaries (their summary index): no envelope is read whole. A receiver whose
  // file is damaged is left out and named on stderr (exit 1), as `deliveries list` names a damaged envelope: the
  // others are listed all the same (docs/operations.md, "After a crash").
  // Before the first start, the secrets file is not there: each type was shown `unsigned`, which its start then signs.
  const atFirstStart = !running && (await secretsMadeAtFirstStart(dataDir, signingFile));
  const { summaries } = await failedDeliveries.summaries();
  const rows = (
    await receiverRows(
      store,
      summaries,
      await localDeployedUrls(dataDir),
      await localBreaker(dataDir),
      await readDeliverySecrets(signingFile),
    )
  ).map((r) =>
    atFirstStart && !('unreadable' in r) ? { ...r, signing_secrets: null, signing_at_first_start: true as const } : r,
  );
  const shown = rows.filter((r) => !type || r.webhook_type === type);
  const damaged = shown.filter((r): r is UnreadableReceiver => 'unreadable' in r);
  printEndpoints(
    shown.filter((r): r is EndpointView => !('unreadable' in r)),
    values.json ?? false,
    sub === 'list' || values.json
      ? atFirstStart
        ? `No gateway has started on this data folder yet: its first start makes one signing secret per type in ${shownPath(signingFile!)}.`
        : undefined
      : running
        ? 'The running gateway uses this from its next delivery on (no restart).'
        : 'No gateway runs on this data folder: the next one started on it uses this.',
  );
  for (const r of damaged)
    note(`webhook-gateway: ${r.unreadable}${r.queued > 0 ? ` (${r.queued} ${r.webhook_type} deliveries queued)` : ''}`);
  return damaged.length > 0 ? 1 : 0;
}
