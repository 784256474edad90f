import { mkdir, readdir, readFile, utimes, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { writerHost } from '../../../functions/shared/writers.ts';
import { startGateway } from '../../../local/server/gateway.ts';
import { folderOf, NO_WAIT, SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

describe('the local failed-delivery store is durable', () => {
  it('survives a restart of the gateway, and the restarted gateway redelivers it', async () => {
    world.receiver.reply(400);
    const res = await world.post(SEED_REQUEST);
    const id = res.body.conversation_id as string;
    const s3Port = Number(new URL(world.gateway.s3Endpoint).port);
    await world.gateway.close();

    // Same data folder, same S3 port: what `npm start` does after Ctrl-C.
    delete process.env.AWS_ENDPOINT_URL_S3;
    const restarted = await startGateway({ port: 0, s3Port, dataDir: world.dataDir, retryIntervalOverrides: NO_WAIT });
    world.gateway = restarted;
    const envelope = await restarted.failedDeliveries.get(id);
    expect(envelope).toMatchObject({ conversation_id: id, state: 'dead', delivery_id: res.body.tracking.delivery_id });
    expect((await restarted.failedDeliveries.list()).map((e) => e.conversation_id)).toContain(id);

    world.receiver.reset();
    const result = await restarted.redelivery.redrive(id);
    expect(result.status).toBe('delivered');
    expect(world.receiver.received).toHaveLength(1);
    const record = await world.getJson(`${folderOf(id)}conversation.json`);
    expect(record.conversation.webhook_context.delivery_status).toBe('delivered');
    const executions = await restarted.executions.executions(id);
    expect(executions.map((e) => e.state_machine)).toEqual(['conversation', 'redelivery']);
  });
});

describe('a container restarted after its gateway was killed (a new pid namespace, pids from 1 again)', () => {
  it('takes the folder over, names what the old namespace left aside, waits on none of it, and serves', async () => {
    const s3Port = Number(new URL(world.gateway.s3Endpoint).port);
    await world.gateway.close();
    const dir = world.dataDir;
    const before = anotherHost(); // the container's tag before the restart
    const pid = process.pid; // the same pid: pid 1 in both runs of the container
    // What its gateway, killed 40 s ago, left: its pid file (touched every 10 s, last 40 s ago), a lock it held, a
    // status written aside, half an export in the embedded S3, a run folder of `conversations query`.
    await writeFile(path.join(dir, 'gateway.pid'), `${pid}@${before} 4242`);
    await mkdir(path.join(dir, 'deliveries', 'endpoints'), { recursive: true });
    const lock = path.join(dir, 'deliveries', 'endpoints', 'deal_analysis.json.lock');
    await writeFile(lock, `${pid}@${before}.0a0b0c0d`);
    await mkdir(path.join(dir, 'status'), { recursive: true });
    const aside = path.join(dir, 'status', `webhook_x.json.${pid}.${before}0a1b2c3d4e5f.tmp`);
    await writeFile(aside, '{"answer":');
    const half = path.join(dir, 's3', '.tmp', `${pid}@${before}-3-0a1b2c`);
    await writeFile(half, '{"conversation":');
    const killedAt = new Date(Date.now() - 40_000);
    for (const file of [path.join(dir, 'gateway.pid'), lock, aside, half]) await utimes(file, killedAt, killedAt);
    const warn = vi.spyOn(console, 'warn');
    try {
      delete process.env.AWS_ENDPOINT_URL_S3;
      world.gateway = await startGateway({ port: 0, s3Port, dataDir: dir, retryIntervalOverrides: NO_WAIT });
      const said = warn.mock.calls.map((call) => String(call[0]));
      // Before: its pid (this process's own) read as this start's: taken over silently, and its leftovers of that
      // same pid were kept as this process's own writes under way.
      expect(said).toContainEqual(
        expect.stringContaining(`named pid ${pid} of another pid namespace or host, not refreshed for 40 s`),
      );
      // The start's retention sweep (in the background) names the copy it keeps, once.
      const kept = () => warn.mock.calls.map((call) => String(call[0])).filter((line) => line.includes('kept 1 cut'));
      await vi.waitFor(() => expect(kept()).toEqual([expect.stringContaining(aside)]));
      expect(await readFile(path.join(dir, 'gateway.pid'), 'utf8')).toMatch(new RegExp(`^${pid}@${writerHost()} `));
      expect(await readdir(path.join(dir, 'status'))).toContain(path.basename(aside)); // kept until a day old
      expect(await readdir(path.join(dir, 's3', '.tmp'))).toContain(path.basename(half)); // until an hour old
      // Its lock (40 s old: stale) holds up no change of the receiver's state.
      const res = await fetch(`${world.gateway.url}/webhook`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify(SEED_REQUEST),
      });
      expect(res.status).toBe(200);
    } finally {
      warn.mockRestore();
    }
  });
});
