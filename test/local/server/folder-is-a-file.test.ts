import { rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { startGateway } from '../../../local/server/gateway.ts';
import { runMain, until } from '../../support/cli.ts';
import { NO_WAIT, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A folder of the data folder that a file took the place of (a tool's mistake, a hand edit): whatever reads it says
 * which entry is in the way and what to do (docs/operations.md, "After a crash"), never a bare ENOTDIR.
 */
let world: TestWorld;
let folder: string;
beforeAll(async () => {
  world = await startWorld();
  folder = path.join(world.dataDir, 'failed-deliveries');
  await rm(folder, { recursive: true, force: true });
  await writeFile(folder, 'not a folder');
});
afterAll(async () => {
  await world?.close();
});

const IN_THE_WAY = () =>
  `${folder} is a file where the gateway keeps a folder (ENOTDIR: not a directory, scandir '${folder}')`;

describe('failed-deliveries is a file', () => {
  it('the history sweep at start and the redelivery schedule name it and say what to do, the schedule once, not at every tick', async () => {
    const s3Port = Number(new URL(world.gateway.s3Endpoint).port);
    await world.gateway.close();
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      delete process.env.AWS_ENDPOINT_URL_S3;
      const restarted = await startGateway({
        port: 0,
        s3Port,
        dataDir: world.dataDir,
        retryIntervalOverrides: NO_WAIT,
        redeliveryPollMs: 5,
      });
      world.gateway = restarted;
      const runs = vi.spyOn(restarted.redelivery, 'runDue');
      await until('three runs of the schedule', () => runs.mock.calls.length >= 3);
      await restarted.close(); // waits for the sweep begun at start
      const lines = printed.mock.calls.map((call) => String(call[0]));
      expect(lines.filter((l) => l.startsWith('webhook-gateway: the local history sweep failed: '))).toEqual([
        `webhook-gateway: the local history sweep failed: ${IN_THE_WAY()}: move it aside or delete it (a restart of the gateway makes the folder again)`,
      ]);
      expect(lines.filter((l) => l.startsWith('webhook-gateway: redelivery sweep failed: '))).toEqual([
        `webhook-gateway: redelivery sweep failed: ${IN_THE_WAY()}: move it aside or delete it (a restart of the gateway makes the folder again)`,
      ]);
      world.gateway = await startGateway({ port: 0, s3Port, dataDir: world.dataDir, retryIntervalOverrides: NO_WAIT });
    } finally {
      printed.mockRestore();
    }
  });

  it('deliveries list names it and says what to do', async () => {
    const listed = await runMain(['deliveries', 'list'], { LOCAL_DATA_DIR: world.dataDir });
    expect(listed.code).toBe(1);
    expect(listed.stderr).toContain(`webhook-gateway: ${IN_THE_WAY()}: move it aside or delete it`);
    expect(listed.stderr).not.toContain('Error: ENOTDIR');
  });

  it("the console's pages that read it say so, and the gateway prints it without a stack", async () => {
    const printed = vi.spyOn(console, 'error').mockImplementation(() => undefined);
    try {
      const page = await fetch(`${world.gateway.url}/console`);
      expect(page.status).toBe(500);
      expect(await page.text()).toContain(`${folder} is a file where the gateway keeps a folder`);
      const lines = printed.mock.calls.map((call) => String(call[0]));
      expect(lines).toEqual([expect.stringContaining(`GET "/console" failed: ${IN_THE_WAY()}`)]);
      expect(lines[0]).not.toContain('    at ');
    } finally {
      printed.mockRestore();
    }
  });
});
