import { mkdtemp, readdir, readFile, rm, stat, utimes, writeFile } from 'node:fs/promises';
import type { Server } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { SummaryIndex } from '../../local/history/summary-index.ts';
import { ExecutionStore } from '../../local/store/execution-store.ts';
import { crashTestEnv, killIfRunning, runCli, startCli, until } from '../support/cli.ts';
import { saveDeliveredHistory } from '../support/history-reads.ts';
import { type KillAt, killAtEnv, startUntilKilled } from '../support/kill-at.ts';
import { closeJsonServers, serveJson } from '../support/servers.ts';

/**
 * kill -9 at named file calls of the operator's flows (docs/operations.md, "After a crash"), as
 * test/e2e/crash-points.test.ts does for a conversation, with test/support/kill-at.cjs preloaded: the gateway while
 * `deliveries redrive` or `resend` (the real command, another process) asks it to deliver, during the schedule's run
 * and during the retention sweep at its start; the command itself in `endpoints set`, `endpoints pause`,
 * `conversations query` (its cache) and `conversations list` (its fold of the summary index). The command must say
 * truthfully what happened (or be safe to run again), the restart must print what it recovered, no file may be left
 * readable by others, and nothing may be lost or sent again that the operator did not ask for.
 */
const START_MS = 60_000;
// Each test's limit, 180 s: two gateway starts (each up to START_MS: one took 17.5 s at load 12.5) and up to four CLI
// commands. 60 s failed a redrive point at load 15-23 whose every step kept within its own limit. Like the other crash
// tests' 180 s, it only catches a hang.

const servers: Server[] = [];
const tempDirs: string[] = [];
const gateways: Awaited<ReturnType<typeof startCli>>[] = [];
// A test that timed out leaves its gateway running: stopped before the next test starts its own.
afterEach(async () => {
  for (const gateway of gateways) await killIfRunning(gateway);
});
afterAll(async () => {
  closeJsonServers(servers);
  for (const dir of tempDirs) await rm(dir, { recursive: true, force: true });
});

/**
 * One conversation's agent and receiver, with `received`, what the receiver was sent: it answers 503 to the first
 * `busyFirst` deliveries (the workflow's attempts), 400 to the first when `refused`, else 200. A delivery after the
 * busy ones (the schedule's, 100 ms after the envelope is queued) is answered only once `answered()` is called, when
 * the conversation's caller has its answer: at load 10 the schedule's attempt came, and a kill at it, before the
 * gateway had answered the caller. Each conversation has its own: a test that timed out keeps its gateway until
 * afterAll, and its deliveries, had the receiver been shared, would have been the next test's.
 */
async function startPeers({ busyFirst = 0, refused = false } = {}) {
  const received: { webhookId: string; status: number }[] = [];
  let answered = () => {};
  const callerAnswered = new Promise<void>((resolve) => {
    answered = resolve;
  });
  const agentUrl = await serveJson(servers, async () => [200, { response: 'The answer' }]);
  const receiverUrl = await serveJson(servers, async (req) => {
    const n = received.length;
    const status = n < busyFirst ? 503 : refused && n === 0 ? 400 : 200;
    if (busyFirst > 0 && n >= busyFirst) await callerAnswered;
    received.push({ webhookId: String(req.headers['webhook-id']), status });
    return [status, status === 200 ? { ok: true } : { error: 'rejected' }];
  });
  return { agentUrl, receiverUrl, received, answered };
}

/**
 * A gateway on a new data folder (killed at `at` when given) and one synchronous conversation answered 200 by it:
 * the folder, the gateway's environment (without the hook), the gateway, its exit signal to come, the conversation id,
 * what its receiver was sent (startPeers, answering as the options say).
 */
async function conversationOn(at: KillAt | null, answers: Parameters<typeof startPeers>[0] = {}) {
  const { agentUrl, receiverUrl, received, answered } = await startPeers(answers);
  const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-operator-crash-'));
  tempDirs.push(dataDir);
  const env = crashTestEnv(dataDir, agentUrl, receiverUrl);
  const gateway = await startCli({ ...env, ...(at ? await killAtEnv(dataDir, at, tempDirs) : {}) }, START_MS);
  gateways.push(gateway);
  const exited = new Promise((resolve) => gateway.child.once('exit', (_c, s) => resolve(s)));
  const res = await fetch(`${gateway.url}/webhook`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ query: 'operator crash', source_system: 'operator_crash', source_process: 'kill9' }),
  }).finally(answered);
  expect(res.status).toBe(200);
  const { conversation_id: id } = (await res.json()) as { conversation_id: string };
  return { dataDir, env, gateway, exited, id, received };
}

interface Point extends KillAt {
  name: string;
  command: 'redrive' | 'resend';
  /** What the restart's `recovered` line says of the cut run. */
  recovered: string;
  /** The envelope's state once recovered: still dead (redrive it again), or settled (delivered). */
  after: 'dead' | 'settled';
}

/**
 * The paths of the one conversation's delivery: its first delivery is the first attempt logged (and, refused for
 * good, the envelope's first write); the operator's is the second. The first append is made twice (its folder made
 * in between), so the operator's attempt is the third append begun.
 */
const ATTEMPTS = 'deliveries/attempts/[^/]+\\.jsonl$';
const ENVELOPE = 'failed-deliveries/webhook_[^/]+\\.json$';
const CUT = 'cut during its attempt, shown as interrupted';
const FINISHED = 'finished: completed, delivery delivered';

const POINTS: Point[] = [
  {
    name: 'the receiver answered, the attempt not logged',
    command: 'redrive',
    op: 'append',
    path: ATTEMPTS,
    n: 3,
    when: 'before',
    recovered: `${CUT}, its envelope as it was: completed, delivery failed; its envelope is dead (permanent), never tried again by the schedule: deliveries redrive <id> tries it`,
    after: 'dead',
  },
  {
    name: 'the attempt logged',
    command: 'redrive',
    op: 'append',
    path: ATTEMPTS,
    n: 2,
    when: 'after',
    recovered: FINISHED,
    after: 'settled',
  },
  {
    name: 'the envelope before it is settled',
    command: 'redrive',
    op: 'rename',
    path: ENVELOPE,
    n: 2,
    when: 'before',
    recovered: FINISHED,
    after: 'settled',
  },
  {
    name: 'the receiver answered, the attempt not logged',
    command: 'resend',
    op: 'append',
    path: ATTEMPTS,
    n: 3,
    when: 'before',
    recovered: `${CUT}: completed, delivery delivered; not repeated: deliveries resend <id> sends it again if the receiver did not get it`,
    after: 'settled',
  },
  {
    name: 'the attempt logged',
    command: 'resend',
    op: 'append',
    path: ATTEMPTS,
    n: 2,
    when: 'after',
    recovered: FINISHED,
    after: 'settled',
  },
];

describe("kill -9 during an operator's redrive or resend, then a restart on the same data", () => {
  for (const point of POINTS)
    it(`${point.command}, ${point.name}: the command says the gateway stopped under it, the restart what it recovered`, async () => {
      // A delivered conversation (to resend), or one refused for good (dead, to redrive).
      const refused = point.command === 'redrive';
      const { dataDir, env, gateway, exited, id, received } = await conversationOn(point, { refused });
      const cliEnv = { LOCAL_DATA_DIR: dataDir, NO_COLOR: '1' };

      const cut = await runCli(['deliveries', point.command, id], cliEnv);
      expect(await exited, gateway.output()).toBe('SIGKILL');
      expect(received.map((r) => r.webhookId)).toEqual([received[0]!.webhookId, received[0]!.webhookId]);
      // Not "the gateway is not running: start it": it took the request, and the delivery may have been made.
      expect(cut.code, cut.stderr).toBe(1);
      expect(cut.stderr).toContain(
        `stopped before it answered the ${point.command} of ${id}: it may have reached the receiver`,
      );
      expect(cut.stderr).toContain(`its "recovered" line says what became of the ${point.command}`);

      const restarted = await startCli(env, START_MS);
      gateways.push(restarted);
      const recovered = restarted.output().match(/ recovered {2}.*/g) ?? [];
      expect(recovered, restarted.output()).toHaveLength(1);
      expect(recovered[0]).toContain(`${point.command} ${id}-redelivery-`);
      expect(recovered[0]).toContain(point.recovered.replace('<id>', id));
      const listed = await runCli(['deliveries', 'list', '--state', 'all', '--json'], cliEnv);
      const envelopes = JSON.parse(listed.stdout) as { conversation_id: string; state: string }[];
      expect(envelopes.map((e) => e.state)).toEqual(point.command === 'redrive' ? [point.after] : []);
      // Nothing sent again by itself; what the command says is safe to run again is.
      expect(received).toHaveLength(2);
      if (point.after === 'dead') {
        const again = await runCli(['deliveries', 'redrive', id], cliEnv);
        expect(again.code, again.stderr).toBe(0);
        expect(received.map((r) => r.webhookId)).toEqual(Array(3).fill(received[0]!.webhookId));
      }
      await killIfRunning(restarted);
    }, 180_000);
});

describe('kill -9 during the retention sweep, then a restart on the same data', () => {
  it('between the histories removed and their summary entries dropped: the next start drops them', async () => {
    const { agentUrl, receiverUrl } = await startPeers();
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-retention-crash-'));
    tempDirs.push(dataDir);
    // Two conversations saved as the gateway saves them, their entries folded into the index: one past the retention.
    const store: ExecutionStore = new ExecutionStore(dataDir, {
      onSaved: (id, file, record, folder) => SummaryIndex.of(store).recordSaved(id, file, record, folder),
    });
    const old = await saveDeliveredHistory(store, '2026-02-01T10:00:00.000Z', 'old', 'run-old');
    const recent = await saveDeliveredHistory(store, new Date().toISOString(), 'recent', 'run-recent');
    await SummaryIndex.of(store).forgetRemoved();
    // What the index's files hold; one the running gateway removes between the listing and its read (its lock's
    // copy aside, a folded file) holds nothing any more.
    const summaries = async () => {
      const dir = path.join(dataDir, 'summaries');
      const names = (await readdir(dir)).filter((n) => n.startsWith('conversations'));
      const read = (n: string) =>
        readFile(path.join(dir, n), 'utf8').catch((error: NodeJS.ErrnoException) => {
          if (error.code === 'ENOENT') return '';
          throw error;
        });
      return (await Promise.all(names.map(read))).join('\n');
    };
    expect(await summaries()).toContain(old);

    // The start's sweep removes the old history, and is killed as the index is written without it.
    const env = crashTestEnv(dataDir, agentUrl, receiverUrl);
    const at: KillAt = { op: 'rename', path: 'summaries/conversations\\.json$', n: 1, when: 'before' };
    const killed = await startUntilKilled({ ...env, ...(await killAtEnv(dataDir, at, tempDirs)) }, START_MS, gateways);
    expect(killed.signal, killed.output).toBe('SIGKILL');
    expect(await readdir(path.join(dataDir, 'executions'))).toEqual([recent]);
    expect(await summaries()).toContain(old);

    // The next start's sweep finds no history to remove, and drops their entries all the same.
    const restarted = await startCli(env, START_MS);
    gateways.push(restarted);
    await until('the start sweep to drop the removed entries', async () => !(await summaries()).includes(old), 15_000);
    expect(await summaries()).toContain(recent);
    await killIfRunning(restarted);
  }, 180_000);
});

/** A receiver's changes: `endpoints set | pause` (the command killed at its file calls), then run again whole. */
interface EndpointPoint extends KillAt {
  name: string;
  args: string[];
  /** What `endpoints list --json` shows of the receiver once the command ran whole. */
  after: Record<string, unknown>;
}

const NEW_SECRET = `whsec_${Buffer.from('a new secret of the receiver').toString('base64')}`;
const SECRETS = 'delivery-signing-secrets\\.json$';
const RECEIVER = 'deliveries/endpoints/deal_analysis\\.json$';
const SET_URL_AND_SECRET = ['--url', 'http://127.0.0.1:9/new', '--secret', NEW_SECRET];
const ENDPOINT_POINTS: EndpointPoint[] = [
  {
    name: 'the URL changed, the secrets file not yet placed',
    args: SET_URL_AND_SECRET,
    op: 'rename',
    path: SECRETS,
    n: 1,
    when: 'before',
    after: { url: 'http://127.0.0.1:9/…', url_source: 'configured', signing_secrets: 2 },
  },
  {
    name: 'the secrets placed, their time not recorded on the receiver',
    args: SET_URL_AND_SECRET,
    op: 'rename',
    path: SECRETS,
    n: 1,
    when: 'after',
    after: { url: 'http://127.0.0.1:9/…', url_source: 'configured', signing_secrets: 2 },
  },
  {
    name: 'the previous secret dropped, the time not recorded',
    args: ['--drop-previous-secret'],
    op: 'rename',
    path: SECRETS,
    n: 1,
    when: 'after',
    after: { signing_secrets: 1 },
  },
  {
    name: 'a pause before the receiver is written',
    args: ['pause'],
    op: 'rename',
    path: RECEIVER,
    n: 1,
    when: 'before',
    after: { status: 'paused' },
  },
];

describe("kill -9 during an operator's endpoints set or pause, then the command run again", () => {
  for (const point of ENDPOINT_POINTS)
    it(`${point.name}: run again, it ends as run once, its files owner-only and whole`, async () => {
      const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-crash-'));
      tempDirs.push(dataDir);
      const cliEnv = { LOCAL_DATA_DIR: dataDir, NO_COLOR: '1' };
      // A rotation under way (two secrets), for the drop; a first --secret otherwise.
      if (point.args[0] === '--drop-previous-secret')
        expect((await runCli(['endpoints', 'set', 'deal_analysis', '--secret', NEW_SECRET], cliEnv)).code).toBe(0);
      const command =
        point.args[0] === 'pause'
          ? ['endpoints', 'pause', 'deal_analysis']
          : ['endpoints', 'set', 'deal_analysis', ...point.args];
      const cut = await runCli(command, { ...cliEnv, ...(await killAtEnv(dataDir, point, tempDirs)) });
      expect(cut.code, cut.stderr).toBeNull();
      const again = await runCli([...command, '--json'], cliEnv);
      expect(again.code, again.stderr).toBe(0);
      const [receiver] = JSON.parse(again.stdout) as Record<string, unknown>[];
      expect(receiver).toMatchObject(point.after);
      if (point.args.includes('--secret') || point.args.includes('--drop-previous-secret'))
        expect(receiver!.secrets_changed_at).toEqual(expect.any(String));
      // Every file of the receiver and the secrets owner-only; what the kill left aside (a copy of the secrets or of
      // the receiver) was removed by the command run again: before, it stayed until the start's sweep a day later.
      const files = [
        ...(await readdir(dataDir)).map((n) => path.join(dataDir, n)),
        ...(await readdir(path.join(dataDir, 'deliveries', 'endpoints'))).map((n) =>
          path.join(dataDir, 'deliveries', 'endpoints', n),
        ),
      ];
      for (const file of files) {
        const s = await stat(file);
        expect([file, (s.mode & 0o777).toString(8)]).toEqual([file, s.isDirectory() ? '700' : '600']);
      }
      expect(files.filter((file) => file.endsWith('.tmp'))).toEqual([]);
    }, 180_000);

  it('the secrets in a file outside the data folder (DELIVERY_SIGNING_SECRETS_FILE): run again, nothing is left aside', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-crash-'));
    const secretsDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-secrets-'));
    tempDirs.push(dataDir, secretsDir);
    const secretsFile = path.join(secretsDir, 'secrets.json');
    await writeFile(secretsFile, `${JSON.stringify({ deal_analysis: NEW_SECRET })}\n`, { mode: 0o600 });
    const cliEnv = { LOCAL_DATA_DIR: dataDir, NO_COLOR: '1', DELIVERY_SIGNING_SECRETS_FILE: secretsFile };
    const command = ['endpoints', 'set', 'deal_analysis', '--secret', NEW_SECRET.replace('a', 'b')];
    const at: KillAt = { op: 'rename', path: 'secrets\\.json$', n: 1, when: 'before' };
    const cut = await runCli(command, { ...cliEnv, ...(await killAtEnv(secretsDir, at, tempDirs)) });
    expect(cut.code, cut.stderr).toBeNull();
    // The copy of every secret it was writing, left beside the user's file: no retention sweep ever looks there.
    expect((await readdir(secretsDir)).filter((n) => n.endsWith('.tmp'))).toHaveLength(1);

    const again = await runCli([...command, '--json'], cliEnv);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)[0]).toMatchObject({ signing_secrets: 2 });
    expect(await readdir(secretsDir)).toEqual(['secrets.json']);
  }, 180_000);
});

describe('kill -9 while `conversations query` saves its cache', () => {
  it('leaves no copy of the conversations readable by others, and the next query runs', async () => {
    const { dataDir, gateway } = await conversationOn(null);
    await killIfRunning(gateway);

    // Killed once the cache is written aside, before it is made owner-only and renamed into place.
    const cliEnv = { LOCAL_DATA_DIR: dataDir, NO_COLOR: '1' };
    const sql = 'select count(*) as n from conversations';
    const at: KillAt = { op: 'chmod', path: 'analytics/(.*/)?conversations\\.parquet\\.', n: 1, when: 'before' };
    const cut = await runCli(['conversations', 'query', sql], {
      ...cliEnv,
      ...(await killAtEnv(dataDir, at, tempDirs)),
    });
    expect(cut.code, cut.stderr).toBeNull();
    const analytics = path.join(dataDir, 'analytics');
    const modes = async () =>
      Promise.all(
        (await readdir(analytics)).map(async (n) => {
          const s = await stat(path.join(analytics, n));
          return `${s.isDirectory() ? 'folder' : 'file'} ${(s.mode & 0o777).toString(8)}`;
        }),
      );
    // What it left aside (the build's batches, the cache written aside) is in owner-only folders of its own: nobody
    // else can read a conversation's row.
    expect(new Set(await modes())).toEqual(new Set(['folder 700']));

    const again = await runCli(['conversations', 'query', sql, '--json'], cliEnv);
    expect(again.code, again.stderr).toBe(0);
    expect(JSON.parse(again.stdout)).toEqual([{ n: 1 }]);
    // The next query removed what the killed one left, and kept its cache owner-only.
    expect(await modes()).toEqual(['file 600']);
  }, 180_000);
});

describe('kill -9 while `conversations list` folds the saved summary entries into the index', () => {
  it('loses no entry: the next listing folds what the killed one moved aside, and removes it', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-fold-crash-'));
    tempDirs.push(dataDir);
    // Saved as the gateway saves them: each entry one line of the saved entries' file, none in the index yet.
    const store: ExecutionStore = new ExecutionStore(dataDir, {
      onSaved: (id, file, record, folder) => SummaryIndex.of(store).recordSaved(id, file, record, folder),
    });
    const ids = [
      await saveDeliveredHistory(store, '2026-11-30T10:00:00.000Z', 'one', 'run-one'),
      await saveDeliveredHistory(store, '2026-11-30T11:00:00.000Z', 'two', 'run-two'),
    ];
    const summaries = path.join(dataDir, 'summaries');
    expect(await readdir(summaries)).toEqual(['conversations.saved.jsonl']);
    const cliEnv = { LOCAL_DATA_DIR: dataDir, NO_COLOR: '1' };
    const list = ['conversations', 'list', '--json'];
    // Killed once it moved the saved entries aside, before the index holds them.
    const at: KillAt = { op: 'rename', path: 'summaries/conversations\\.saved\\.jsonl\\.', n: 1, when: 'after' };
    const cut = await runCli(list, { ...cliEnv, ...(await killAtEnv(dataDir, at, tempDirs)) });
    expect(cut.code, cut.stderr).toBeNull();
    expect((await readdir(summaries)).filter((n) => n.startsWith('conversations.saved.jsonl.'))).toHaveLength(1);

    const again = await runCli(list, cliEnv);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { conversation_id: string }[]).map((c) => c.conversation_id).sort()).toEqual(
      ids.sort(),
    );
    const index = JSON.parse(await readFile(path.join(summaries, 'conversations.json'), 'utf8')) as {
      entries: Record<string, unknown>;
    };
    expect(Object.keys(index.entries).sort()).toEqual(ids.sort());
    expect((await readdir(summaries)).filter((n) => n.startsWith('conversations.saved'))).toEqual([]);
  }, 180_000);

  it('killed as it writes the index: the next listing removes the copy it left aside (every question listed)', async () => {
    const dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-index-crash-'));
    tempDirs.push(dataDir);
    const store = new ExecutionStore(dataDir);
    const ids = [await saveDeliveredHistory(store, '2026-11-30T10:00:00.000Z', 'one', 'run-one')];
    // Saved a minute ago: the index keeps an entry once its folder has not changed for a second (summary-index.ts).
    const folder = path.join(dataDir, 'executions', ids[0]!);
    const aMinuteAgo = new Date(Date.now() - 60_000);
    for (const name of await readdir(folder)) await utimes(path.join(folder, name), aMinuteAgo, aMinuteAgo);
    await utimes(folder, aMinuteAgo, aMinuteAgo);
    const summaries = path.join(dataDir, 'summaries');
    const cliEnv = { LOCAL_DATA_DIR: dataDir, NO_COLOR: '1' };
    const list = ['conversations', 'list', '--json'];
    // Killed once the index is written aside, before it is renamed into place.
    const at: KillAt = { op: 'rename', path: 'summaries/conversations\\.json$', n: 1, when: 'before' };
    const cut = await runCli(list, { ...cliEnv, ...(await killAtEnv(dataDir, at, tempDirs)) });
    expect(cut.code, cut.stderr).toBeNull();
    const leftAside = (await readdir(summaries)).filter((n) => n.endsWith('.tmp'));
    expect(leftAside).toEqual([expect.stringMatching(/^conversations\.json\.\d+\.[0-9a-f]+\.tmp$/)]);

    const again = await runCli(list, cliEnv);
    expect(again.code, again.stderr).toBe(0);
    expect((JSON.parse(again.stdout) as { conversation_id: string }[]).map((c) => c.conversation_id)).toEqual(ids);
    // Before, the copy (every conversation's question) stayed until a gateway's start sweep a day later.
    expect((await readdir(summaries)).filter((n) => n.endsWith('.tmp'))).toEqual([]);
  }, 180_000);
});

describe("kill -9 during the redelivery schedule's run, then a restart on the same data", () => {
  it('its attempt logged: finished as delivered, nothing sent again', async () => {
    // The workflow's four attempts refused: the delivery is queued, and the schedule's run delivers it, the fifth
    // attempt logged.
    const at: KillAt = { op: 'append', path: ATTEMPTS, n: 5, when: 'after' };
    const { dataDir, env, gateway, exited, id, received } = await conversationOn(at, { busyFirst: 4 });
    expect(await exited, gateway.output()).toBe('SIGKILL');

    const restarted = await startCli(env, START_MS);
    gateways.push(restarted);
    const recovered = restarted.output().match(/ recovered {2}.*/g) ?? [];
    expect(recovered, restarted.output()).toEqual([expect.stringContaining(`${id}  schedule ${id}-redelivery-`)]);
    expect(recovered[0]).toContain(FINISHED);
    const listed = await runCli(['deliveries', 'list', '--state', 'all', '--json'], { LOCAL_DATA_DIR: dataDir });
    expect((JSON.parse(listed.stdout) as { state: string }[]).map((e) => e.state)).toEqual(['settled']);
    expect(received.map((r) => r.status)).toEqual([503, 503, 503, 503, 200]);
    expect(new Set(received.map((r) => r.webhookId)).size).toBe(1);
    await killIfRunning(restarted);
  }, 180_000);
});
