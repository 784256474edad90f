import { spawnSync } from 'node:child_process';
import { mkdir, readFile, rm, symlink, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { idempotencyPk } from '../../functions/domain/idempotency.ts';
import { FileEndpointStore } from '../../functions/shared/endpoint-store.ts';
import type { RequestSummary } from '../../local/server/config.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * A file of the data folder damaged under the running gateway (a full disk, a crash of another tool, a hand edit):
 * each request that needs it is told so, the operator's line names the file and what to do (docs/operations.md,
 * "After a crash"), and nothing runs twice or is answered as if the file were not there.
 */
let world: TestWorld;
const operatorLog: RequestSummary[] = [];
beforeAll(async () => {
  world = await startWorld({}, { onExecution: (summary) => operatorLog.push(summary) });
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
  operatorLog.length = 0;
});

const key = () => `order-${Math.random().toString(36).slice(2)}`;
const keyFile = (k: string) => path.join(world.dataDir, 'idempotency', `${idempotencyPk('testing_system', k)}.json`);

/** What a damaged file may hold: cut short, empty, not JSON at all, or JSON that is no record. */
const DAMAGED: [string, string][] = [
  ['cut short', '{"pk":"abc","status":"compl'],
  ['empty', ''],
  ['not JSON', '\u0000\u0000\u0000\u0000'],
  ['JSON of another shape', '{"hello":"world"}'],
  ['null', 'null'],
];

describe('a damaged idempotency record: never a second conversation', () => {
  it.each(DAMAGED)(
    'the key file %s: a retry with that Idempotency-Key is refused 500 STATE_UNREADABLE, runs nothing, and the operator line names the file',
    async (_what, damaged) => {
      const k = key();
      const first = await world.post(SEED_REQUEST, { 'idempotency-key': k });
      expect(first.status).toBe(200);
      await writeFile(keyFile(k), damaged);
      operatorLog.length = 0;
      const retry = await world.post(SEED_REQUEST, { 'idempotency-key': k });
      expect(retry.status).toBe(500);
      expect(retry.body.success).toBe(false);
      expect(retry.body.error.code).toBe('STATE_UNREADABLE');
      expect(retry.body.error.message).toContain('Idempotency-Key');
      expect(retry.body.error.message).not.toContain(world.dataDir); // the caller is not told the operator's paths
      expect(world.agent.invocations).toHaveLength(1);
      expect(world.receiver.received).toHaveLength(1);
      expect(operatorLog).toHaveLength(1);
      expect(operatorLog[0]!.http_status).toBe(500);
      expect(operatorLog[0]!.detail).toContain(keyFile(k));
      expect(operatorLog[0]!.detail).toContain('delete it');
      // Still refused: the gateway never takes a damaged record for a free key.
      expect((await world.post(SEED_REQUEST, { 'idempotency-key': k })).status).toBe(500);
      expect(world.agent.invocations).toHaveLength(1);
    },
  );
});

describe('a key file that is no file: never read without end, never a second conversation', () => {
  it.each([
    ['a link to /dev/zero', (file: string) => symlink('/dev/zero', file)],
    ['a link to /dev/urandom', (file: string) => symlink('/dev/urandom', file)],
    ['a FIFO', async (file: string) => void expect(spawnSync('mkfifo', [file]).status).toBe(0)],
  ])(
    'the key file %s: a retry is refused 500 STATE_UNREADABLE at once, and the operator line names the file and what to do',
    async (_what, replace) => {
      const k = key();
      expect((await world.post(SEED_REQUEST, { 'idempotency-key': k })).status).toBe(200);
      await rm(keyFile(k));
      await replace(keyFile(k));
      operatorLog.length = 0;
      // Before: a link to a device was read until the gateway died (a RangeError after 512 MB), a FIFO until a writer came.
      const retry = await world.post(SEED_REQUEST, { 'idempotency-key': k });
      expect(retry.status).toBe(500);
      expect(retry.body.error.code).toBe('STATE_UNREADABLE');
      expect(retry.body.error.message).toContain('Idempotency-Key');
      expect(world.agent.invocations).toHaveLength(1);
      expect(operatorLog[0]!.detail).toContain(`${keyFile(k)} is not a regular file`);
      expect(operatorLog[0]!.detail).toContain('delete it');
      await rm(keyFile(k));
    },
  );
});

describe('a store folder that is a file', () => {
  it('the idempotency folder: a request with a key is refused 500 STATE_UNREADABLE, runs nothing, and the operator line names it and what to do', async () => {
    const folder = path.join(world.dataDir, 'idempotency');
    await rm(folder, { recursive: true, force: true });
    await writeFile(folder, 'not a folder');
    try {
      const refused = await world.post(SEED_REQUEST, { 'idempotency-key': key() });
      expect(refused.status).toBe(500);
      expect(refused.body.error.code).toBe('STATE_UNREADABLE');
      expect(refused.body.error.message).not.toContain(world.dataDir);
      expect(world.agent.invocations).toHaveLength(0);
      expect(operatorLog).toHaveLength(1);
      expect(operatorLog[0]!.detail).toContain(
        `STATE_UNREADABLE: ${folder} is a file where the gateway keeps a folder`,
      );
      expect(operatorLog[0]!.detail).toContain('move it aside or delete it');
    } finally {
      await rm(folder, { force: true });
    }
    expect((await world.post(SEED_REQUEST, { 'idempotency-key': key() })).status).toBe(200);
  });
});

describe('a damaged status record: GET /conversations/{id} says so, never 404', () => {
  const statusUrl = (id: string) => `${world.gateway.url}/conversations/${id}?source_system=testing_system`;
  const statusFile = (id: string) => path.join(world.dataDir, 'status', `${id}.json`);

  it.each(DAMAGED)(
    'the status file %s: 500 STATE_UNREADABLE with no-store, and the gateway prints the file and what to do',
    async (_what, damaged) => {
      const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
      expect(accepted.status).toBe(202);
      const id = accepted.body.conversation_id as string;
      await world.gateway.idle();
      expect((await fetch(statusUrl(id))).status).toBe(200);
      await writeFile(statusFile(id), damaged);
      const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
      try {
        const response = await fetch(statusUrl(id));
        expect(response.status).toBe(500);
        expect(response.headers.get('cache-control')).toBe('no-store');
        const body = (await response.json()) as any;
        expect(body).toMatchObject({ success: false, error: { code: 'STATE_UNREADABLE' } });
        expect(body.error.message).toContain('status record');
        expect(body.error.message).not.toContain(world.dataDir);
        expect(printed).toHaveBeenCalledTimes(1);
        expect(String(printed.mock.calls[0]![0])).toContain(statusFile(id));
        expect(String(printed.mock.calls[0]![0])).toContain('delete it');
        expect(String(printed.mock.calls[0]![0])).not.toMatch(/\n\s+at /); // no stack
      } finally {
        printed.mockRestore();
      }
    },
  );

  it('a status damaged while its conversation runs: the run still ends delivered and exported, the file is left as it is', async () => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => {
      release = resolve;
    });
    world.agent.behave(async () => {
      await released;
      return { payload: { response: 'the answer', agent: 'test-agent' } };
    });
    const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
    const id = accepted.body.conversation_id as string;
    await writeFile(statusFile(id), '{"conversation_id":');
    release();
    await world.gateway.idle();
    expect(world.receiver.received).toHaveLength(1);
    expect(await world.listKeys(folderOf(id))).toHaveLength(4);
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      expect((await fetch(statusUrl(id))).status).toBe(500);
    } finally {
      printed.mockRestore();
    }
  });
});

describe('a damaged receiver file: nothing is delivered while what it held is unknown (it may be a pause)', () => {
  const deliveries = () => new FileEndpointStore(path.join(world.dataDir, 'deliveries'));

  it.each([
    ...DAMAGED,
    ['a folder', null] as [string, null],
    ['a link to a missing file', 'link'] as [string, string],
    // Before: read without end on every delivery (a RangeError after 512 MB), or, a FIFO, waited on for a writer.
    ['a link to /dev/zero', '/dev/zero'] as [string, string],
    ['a FIFO', 'fifo'] as [string, string],
  ])(
    'deal_analysis paused, then its file %s: no POST, queued naming the file; deleted, a redrive delivers it',
    async (_what, damaged) => {
      const store = deliveries();
      await store.configure('deal_analysis', { paused: true }, new Date());
      const file = store.file('deal_analysis');
      if (damaged === null) {
        await rm(file);
        await mkdir(file);
      } else if (damaged === 'link' || damaged === '/dev/zero') {
        await rm(file);
        await symlink(damaged === 'link' ? path.join(world.dataDir, 'moved-away.json') : damaged, file);
      } else if (damaged === 'fifo') {
        await rm(file);
        expect(spawnSync('mkfifo', [file]).status).toBe(0);
      } else await writeFile(file, damaged);

      const res = await world.post(SEED_REQUEST);
      expect(res.status).toBe(200);
      expect(res.body.tracking.delivery_status).toBe('queued');
      expect(world.receiver.received).toHaveLength(0);
      const id = res.body.conversation_id as string;
      const envelope = (await world.gateway.failedDeliveries.get(id))!;
      expect(envelope).toMatchObject({ state: 'pending', target: null });
      expect(envelope.last_error).toContain(`the receiver of deal_analysis cannot be read (${file} is not `);
      expect(envelope.last_error).toContain('mended or deleted');
      // Neither an operator's redrive nor the schedule goes through it while it is damaged.
      expect((await world.gateway.redelivery.redrive(id)).status).toBe('held');
      await world.gateway.failedDeliveries.put({ ...envelope, next_due_at: new Date(Date.now() - 1).toISOString() });
      // The schedule holds it without a run (none of its results is this conversation).
      expect((await world.gateway.redelivery.runDue()).map((r) => r.conversation_id)).not.toContain(id);
      expect(world.receiver.received).toHaveLength(0);

      await rm(file, { recursive: true }); // mended: the receiver starts afresh (docs/operations.md, "After a crash")
      expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
      expect(world.receiver.received).toHaveLength(1);
    },
  );
});

describe('a receiver file replaced by a link to a device: the commands refuse it at once, naming it', () => {
  it.each(['/dev/full', '/dev/zero'])(
    'a link to %s: endpoints pause refuses with the file and what to do, exit 1; endpoints list names it, lists the others',
    async (device) => {
      const file = new FileEndpointStore(path.join(world.dataDir, 'deliveries')).file('lead_analysis');
      await rm(file, { force: true });
      await symlink(device, file);
      try {
        const env = { LOCAL_DATA_DIR: world.dataDir, NO_COLOR: '1' };
        // Before: "RangeError: Invalid string length" after reading 512 MB.
        const paused = await runMain(['endpoints', 'pause', 'lead_analysis'], env);
        expect(paused.code).toBe(1);
        expect(paused.stderr).toContain(
          `${file} is not a regular file (it is a symbolic link, which the gateway never makes)`,
        );
        expect(paused.stderr).toContain('delete it to start that receiver afresh');
        const listed = await runMain(['endpoints', 'list'], env);
        expect(listed.code).toBe(1);
        expect(listed.stdout).toContain('deal_analysis');
        expect(listed.stderr).toContain(`${file} is not a regular file`);
      } finally {
        await rm(file, { force: true });
      }
    },
  );
});

describe('the delivery secrets file damaged while the gateway runs: nothing goes unsigned, and the error names the file', () => {
  it.each([
    ...DAMAGED,
    ['a link to /dev/zero', '/dev/zero'] as [string, string],
    ['a FIFO', 'fifo'] as [string, string],
  ])(
    'the file %s: the delivery fails naming the file and what to do; restored, a redrive delivers it',
    async (_what, damaged) => {
      const file = path.join(world.dataDir, 'delivery-signing-secrets.json');
      const good = await readFile(file, 'utf8');
      try {
        if (damaged === '/dev/zero' || damaged === 'fifo') {
          // Before: the link read without end at each delivery; a FIFO waited on for a writer.
          await rm(file);
          if (damaged === 'fifo') expect(spawnSync('mkfifo', [file]).status).toBe(0);
          else await symlink(damaged, file);
        } else await writeFile(file, damaged);
        const res = await world.post(SEED_REQUEST);
        expect(res.status).toBe(200);
        expect(world.receiver.received).toHaveLength(0);
        const id = res.body.conversation_id as string;
        // Before: "DELIVERY_SIGNING_SECRETS must be a JSON object …" (no file), or, emptied, the delivery went unsigned.
        const envelope = (await world.gateway.failedDeliveries.get(id))!;
        expect(envelope.last_error).toContain(`the delivery secrets file ${file} cannot be used (`);
        expect(envelope.last_error).toContain('restore it');
        expect(operatorLog.at(-1)!.detail).toContain(file);
        const shown = (await runMain(['conversations', 'show', id], { LOCAL_DATA_DIR: world.dataDir, NO_COLOR: '1' }))
          .stdout;
        expect(shown).toContain(`the delivery secrets file ${file} cannot be used`);

        await rm(file);
        await writeFile(file, good, { mode: 0o600 });
        expect((await world.gateway.redelivery.redrive(id)).status).toBe('delivered');
        expect(world.receiver.received).toHaveLength(1);
        expect(world.receiver.received[0]!.headers['webhook-signature']).toMatch(/^v1,/);
      } finally {
        await rm(file, { force: true });
        await writeFile(file, good, { mode: 0o600 });
      }
    },
  );
});
