import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * `conversations list` before the first conversation says what to do next. Before, it said "Start the gateway (npm
 * start)" even to a user whose gateway was running on that folder: now it names where to POST.
 */
let world: TestWorld;
let none: string;
beforeAll(async () => {
  world = await startWorld();
  none = await mkdtemp(path.join(tmpdir(), 'no-gateway-'));
});
afterAll(async () => {
  await world?.close();
  if (none) await rm(none, { recursive: true, force: true });
});

describe('an empty conversations list', () => {
  it("names the running gateway's /webhook, or says to start one", async () => {
    const running = await runMain(['conversations', 'list'], { LOCAL_DATA_DIR: world.dataDir });
    expect(running).toMatchObject({ code: 0, stderr: '' });
    expect(running.stdout).toBe(
      `No conversations yet in ${path.join(world.dataDir, 'executions')}: POST one to ${world.gateway.url}/webhook (the gateway running on this folder).\n`,
    );
    const stopped = await runMain(['conversations', 'list'], { LOCAL_DATA_DIR: none });
    // On that folder: before, "npm start", which starts a gateway on the repository's .data.
    expect(stopped.stdout).toContain(`Start the gateway (LOCAL_DATA_DIR=${none} npm start) and POST to /webhook.`);
  });
});
