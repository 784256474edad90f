import { parseArgs } from 'node:util';
import { isConversationId } from '../../functions/domain/conversation-id.ts';
import { type FailedDeliveryEnvelope, owedBy } from '../../functions/domain/failed-delivery.ts';
import type { RedeliveryResult } from '../../functions/shared/redelivery.ts';
import { resolveOptions } from '../server/config.ts';
import { LocalFailedDeliveryStore } from '../store/failed-delivery-store.ts';
import { readGatewayRuntime } from '../store/gateway-runtime.ts';
import { AWS_OPTIONS, age, awsRequested, CliError, out, parseSince, stateLabel } from './shared.ts';
import { formatTable } from './table.ts';

export async function deliveriesList(args: string[]): Promise<number> {
  const { values } = parseArgs({
    args,
    options: { json: { type: 'boolean' }, state: { type: 'string' }, ...AWS_OPTIONS },
  });
  if (awsRequested(values)) {
    if (values.state !== undefined)
      throw new CliError(
        '--state is for the local store; with --aws the list shows the dead-letter queue and counts the pending ones',
      );
    const { awsDeliveriesList } = await import('./aws/deliveries.ts');
    const { withAws } = await import('./aws/stack.ts');
    return withAws(values, (clients, stack) => awsDeliveriesList(clients, { stack, json: values.json ?? false }));
  }
  const wanted = values.state ?? 'pending,dead';
  // `delivered` is the name settled envelopes had before; it still selects them.
  const states = (wanted === 'all' ? 'pending,dead,settled' : wanted)
    .split(',')
    .map((s) => (s === 'delivered' ? 'settled' : s));
  for (const s of states)
    if (!['pending', 'dead', 'settled'].includes(s))
      throw new CliError(`--state takes pending, dead, settled or all; got "${s}"`);
  const store = new LocalFailedDeliveryStore(resolveOptions().dataDir);
  const envelopes = (await store.list())
    .filter((e) => states.includes(e.state))
    .sort((a, b) => b.created_at.localeCompare(a.created_at));
  if (values.json) {
    out(JSON.stringify(envelopes, null, 2));
    return 0;
  }
  if (envelopes.length === 0) {
    out(`No ${states.join(' or ')} deliveries in ${store.dir}.`);
    return 0;
  }
  out(
    formatTable(
      ['conversation_id', 'type', 'attempts', 'last_error', 'age', 'state', 'next_due'],
      envelopes.map((e) => [
        e.conversation_id,
        e.webhook_type,
        e.attempts.length,
        (e.last_error ?? '').replace(/\s+/g, ' ').slice(0, 48),
        age(e.created_at),
        stateLabel(e),
        e.next_due_at ?? '-',
      ]),
    ),
  );
  return 0;
}

/** --url, GATEWAY_URL, the gateway running on this data directory (its gateway.json), or PORT on loopback. */
async function gatewayUrl(explicit: string | undefined, dataDir: string): Promise<string> {
  const url =
    explicit ??
    process.env.GATEWAY_URL ??
    (await readGatewayRuntime(dataDir))?.url ??
    `http://127.0.0.1:${resolveOptions().port}`;
  return url.replace(/\/$/, '');
}

async function redriveOne(url: string, id: string): Promise<RedeliveryResult> {
  let response: Response;
  try {
    response = await fetch(`${url}/local/deliveries/${encodeURIComponent(id)}/redrive`, { method: 'POST' });
  } catch {
    throw new CliError(
      `the local gateway is not running at ${url}: start it with "npm start" (a redrive runs the redelivery workflow inside it), or pass --url`,
    );
  }
  const body = (await response.json()) as RedeliveryResult | { error?: { message?: string } };
  if (response.status >= 400 && response.status !== 404) {
    const error = (body as { error?: { message?: string } }).error;
    throw new CliError(`the gateway refused the redrive of ${id}: ${error?.message ?? response.status}`);
  }
  return body as RedeliveryResult;
}

export async function deliveriesRedrive(args: string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    allowPositionals: true,
    options: {
      all: { type: 'boolean' },
      since: { type: 'string' },
      type: { type: 'string' },
      'dry-run': { type: 'boolean' },
      url: { type: 'string' },
      json: { type: 'boolean' },
      ...AWS_OPTIONS,
    },
  });
  if (awsRequested(values)) {
    if (values.url !== undefined)
      throw new CliError('--url is for the local gateway; --aws redrives on the deployed stack');
    const { awsDeliveriesRedrive } = await import('./aws/deliveries.ts');
    const { withAws } = await import('./aws/stack.ts');
    return withAws(values, (clients, stack) =>
      awsDeliveriesRedrive(clients, {
        stack,
        ...(positionals[0] !== undefined ? { id: positionals[0] } : {}),
        all: values.all ?? false,
        ...(values.since !== undefined ? { since: values.since } : {}),
        ...(values.type !== undefined ? { type: values.type } : {}),
        dryRun: values['dry-run'] ?? false,
        json: values.json ?? false,
      }),
    );
  }
  const { dataDir } = resolveOptions();
  const store = new LocalFailedDeliveryStore(dataDir);
  const id = positionals[0];
  if (!id && !values.all)
    throw new CliError('deliveries redrive needs a conversation id, or --all [--since ISO] [--type T]');
  if (id && values.all) throw new CliError('give either a conversation id or --all, not both');
  let candidates: FailedDeliveryEnvelope[];
  if (id) {
    if (!isConversationId(id)) throw new CliError(`"${id}" is not a conversation id`);
    const envelope = await store.get(id);
    if (!envelope) throw new CliError(`no failed delivery for ${id} (see "webhook-gateway deliveries list")`);
    if (envelope.state === 'settled') {
      out(
        owedBy(envelope) === 'export'
          ? `${id} was already exported: nothing to redrive.`
          : `${id} was already delivered (${envelope.attempts.length} attempts): nothing to redrive.`,
      );
      return 0;
    }
    candidates = [envelope];
  } else {
    const since = parseSince(values.since);
    candidates = (await store.list()).filter(
      (e) =>
        e.state !== 'settled' &&
        (since === null || Date.parse(e.created_at) >= since) &&
        (!values.type || e.webhook_type === values.type),
    );
  }
  if (values['dry-run']) {
    out(
      `dry run: would redrive ${candidates.length} deliver${candidates.length === 1 ? 'y' : 'ies'}; nothing was changed`,
    );
    for (const e of candidates)
      out(`  ${e.conversation_id}  ${e.webhook_type}  ${stateLabel(e)}  ${e.attempts.length} attempts`);
    return 0;
  }
  if (candidates.length === 0) {
    out('nothing to redrive');
    return 0;
  }
  const url = await gatewayUrl(values.url, dataDir);
  const counts: Record<string, number> = {};
  const results: RedeliveryResult[] = [];
  for (const [i, e] of candidates.entries()) {
    const result = await redriveOne(url, e.conversation_id);
    results.push(result);
    counts[result.status] = (counts[result.status] ?? 0) + 1;
    const detail =
      result.status === 'failed' ? `: ${result.envelope?.last_error ?? ''}` : result.error ? `: ${result.error}` : '';
    const shown = owedBy(e) === 'export' && result.status === 'delivered' ? 'exported' : result.status;
    if (!values.json)
      out(
        `[${i + 1}/${candidates.length}] ${e.conversation_id} → ${shown}${result.execution_name ? ` (execution ${result.execution_name})` : ''}${detail}`,
      );
  }
  if (values.json) out(JSON.stringify(results, null, 2));
  else
    out(
      `redrove ${candidates.length}: ${Object.entries(counts)
        .map(([k, v]) => `${v} ${k.replace('_', ' ')}`)
        .join(', ')}`,
    );
  return (counts.failed ?? 0) + (counts.error ?? 0) > 0 ? 1 : 0;
}
