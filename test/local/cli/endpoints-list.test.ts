import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { writeGatewayRuntime } from '../../../local/store/gateway-runtime.ts';
import { runMain } from '../../support/cli.ts';

/**
 * `DEAL_ANALYSIS_WEBHOOK_URL=http://127.0.0.1:59999/down npm start`, then `endpoints list` in another shell (the
 * runbook of docs/operations.md): the list shows where the running gateway delivers, from its gateway.json, not from
 * the variables of the shell the command runs in.
 */
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-'));
  await writeGatewayRuntime(dataDir, {
    pid: process.pid,
    url: 'http://127.0.0.1:38999',
    s3_endpoint: 'http://127.0.0.1:38998',
    bucket: 'revops-conversations',
    export_enabled: true,
    started_at: new Date().toISOString(),
    delivery_urls: {
      deal_analysis: 'http://127.0.0.1:59999/down',
      data_analysis: null,
      lead_analysis: 'http://127.0.0.1:38999/local/receiver/lead_analysis',
      general: 'http://127.0.0.1:38999/local/receiver/general',
    },
  });
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('endpoints list, run beside a gateway started with its own receivers', () => {
  it("shows the running gateway's deployed URL, not the shell's", async () => {
    const listed = await runMain(['endpoints', 'list', '--json'], {
      LOCAL_DATA_DIR: dataDir,
      GATEWAY_URL: undefined,
      DEAL_ANALYSIS_WEBHOOK_URL: undefined,
    });
    expect(listed.code, listed.stderr).toBe(0);
    const deal = JSON.parse(listed.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'deal_analysis');
    expect(deal).toMatchObject({ url: 'http://127.0.0.1:59999/down', url_source: 'deployed' });
  });

  it("shows the built-in receiver the gateway started with, whatever this shell's variable says", async () => {
    const listed = await runMain(['endpoints', 'list', '--json'], {
      LOCAL_DATA_DIR: dataDir,
      GATEWAY_URL: undefined,
      DATA_ANALYSIS_WEBHOOK_URL: 'http://127.0.0.1:59998/elsewhere',
    });
    expect(listed.code, listed.stderr).toBe(0);
    const data = JSON.parse(listed.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'data_analysis');
    expect(data).toMatchObject({ url: 'http://127.0.0.1:38999/local/receiver/data_analysis' });
  });
});

describe('endpoints list, run beside a gateway started with its own circuit breaker', () => {
  let other: string;
  beforeAll(async () => {
    other = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-breaker-'));
    // Two failures in a row: failing for a gateway started with ENDPOINT_FAILURE_THRESHOLD=2, not by the default.
    const store = new FileEndpointStore(path.join(other, 'deliveries'));
    const policy = { failureThreshold: 2, disableAfterMs: 0 };
    for (const n of [1, 2]) await store.recordFailure('general', `HTTP 500 (${n})`, new Date(), policy);
    await writeGatewayRuntime(other, {
      pid: process.ppid, // another process, alive: the gateway this command runs beside
      url: 'http://127.0.0.1:38997',
      s3_endpoint: 'http://127.0.0.1:38996',
      bucket: 'revops-conversations',
      export_enabled: true,
      started_at: new Date().toISOString(),
      breaker: policy,
    });
  });
  afterAll(async () => {
    await rm(other, { recursive: true, force: true });
  });

  it("says failing or healthy by the running gateway's threshold, not this shell's", async () => {
    const listed = await runMain(['endpoints', 'list', '--json'], {
      LOCAL_DATA_DIR: other,
      GATEWAY_URL: undefined,
      ENDPOINT_FAILURE_THRESHOLD: undefined,
    });
    expect(listed.code, listed.stderr).toBe(0);
    const general = JSON.parse(listed.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'general');
    expect(general).toMatchObject({ status: 'failing', consecutive_failures: 2 });
  });
});

describe('endpoints list with a receiver file that is not JSON (a hand edit, a full disk)', () => {
  it('names the file and says to delete it, as operations.md does, without the class name of a crash', async () => {
    const broken = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-broken-'));
    try {
      await mkdir(path.join(broken, 'deliveries', 'endpoints'), { recursive: true, mode: 0o700 });
      const file = path.join(broken, 'deliveries', 'endpoints', 'deal_analysis.json');
      await writeFile(file, '{"webhook_type": "deal_an');
      const result = await runMain(['endpoints', 'list'], { LOCAL_DATA_DIR: broken });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(
        /^webhook-gateway: \S+deal_analysis\.json is not valid JSON \(.*\): delete it to start that receiver afresh/,
      );
      expect(result.stderr).toContain(file);
      expect(result.stderr).not.toContain('SyntaxError');
    } finally {
      await rm(broken, { recursive: true, force: true });
    }
  });
});

describe('endpoints list beside a damaged gateway.json', () => {
  it('still lists (as with no gateway running) and says once which file is damaged and what to do', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-damaged-'));
    try {
      await writeFile(path.join(dir, 'gateway.json'), '{"pid": 4');
      const listed = await runMain(['endpoints', 'list', '--json'], { LOCAL_DATA_DIR: dir, GATEWAY_URL: undefined });
      expect(listed.code, listed.stderr).toBe(0);
      expect(JSON.parse(listed.stdout)).toHaveLength(4);
      // Before: nothing said; the list showed this shell's receivers as if no gateway ran.
      const said = listed.stderr.split('\n').filter((l) => l.includes('gateway.json'));
      expect(said).toEqual([expect.stringContaining(`${path.join(dir, 'gateway.json')} is damaged (not valid JSON`)]);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
