import { spawnSync } from 'node:child_process';
import { mkdir, mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FileEndpointStore } from '../../../functions/shared/endpoint-store.ts';
import { writeGatewayRuntime } from '../../../local/store/gateway-runtime.ts';
import { runMain } from '../../support/cli.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

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
    expect(deal).toMatchObject({ url: 'http://127.0.0.1:59999/…', url_source: 'deployed' });
  });

  it("shows the built-in receiver the gateway started with, whatever this shell's variable says", async () => {
    const listed = await runMain(['endpoints', 'list', '--json'], {
      LOCAL_DATA_DIR: dataDir,
      GATEWAY_URL: undefined,
      DATA_ANALYSIS_WEBHOOK_URL: 'http://127.0.0.1:59998/elsewhere',
    });
    expect(listed.code, listed.stderr).toBe(0);
    const data = JSON.parse(listed.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'data_analysis');
    // The built-in receiver's origin, not the shell's 59998.
    expect(data).toMatchObject({ url: 'http://127.0.0.1:38999/…' });
  });

  it('a change says the running gateway uses it from its next delivery', async () => {
    const result = await runMain(['endpoints', 'set', 'general', '--rate', '5/s'], {
      LOCAL_DATA_DIR: dataDir,
      GATEWAY_URL: undefined,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout.trim().split('\n').at(-1)).toBe(
      'The running gateway uses this from its next delivery on (no restart).',
    );
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

  /** The general receiver as `endpoints list --json` shows it, in a shell without ENDPOINT_FAILURE_THRESHOLD. */
  const listedGeneral = async () => {
    const listed = await runMain(['endpoints', 'list', '--json'], {
      LOCAL_DATA_DIR: other,
      GATEWAY_URL: undefined,
      ENDPOINT_FAILURE_THRESHOLD: undefined,
    });
    expect(listed.code, listed.stderr).toBe(0);
    return JSON.parse(listed.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'general');
  };

  it("says failing or healthy by the running gateway's threshold, not this shell's", async () => {
    expect(await listedGeneral()).toMatchObject({ status: 'failing', consecutive_failures: 2 });
  });

  it("by the threshold of a gateway in a container whose pid there is this command's own here", async () => {
    const host = anotherHost();
    const runtime = JSON.parse(await readFile(path.join(other, 'gateway.json'), 'utf8'));
    await writeFile(path.join(other, 'gateway.json'), JSON.stringify({ ...runtime, pid: process.pid, host }));
    await writeFile(path.join(other, 'gateway.pid'), `${process.pid}@${host} 4242`); // touched: it runs
    try {
      // Before: its pid read as this very process, whose own settings (5 failures in a row) said healthy.
      expect(await listedGeneral()).toMatchObject({ status: 'failing', consecutive_failures: 2 });
    } finally {
      await rm(path.join(other, 'gateway.pid'));
    }
  });
});

describe('endpoints list with a receiver the circuit breaker disabled', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-disabled-'));
    // Failing since two days ago, disabled by the failure a day later (a policy of one failure and one day).
    const store = new FileEndpointStore(path.join(dir, 'deliveries'));
    const policy = { failureThreshold: 1, disableAfterMs: 86_400_000 };
    const day = 86_400_000;
    for (const ago of [2 * day, day])
      await store.recordFailure('data_analysis', 'HTTP 503', new Date(Date.now() - ago), policy);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('says since when it is disabled, as it says since when a receiver is paused; --json keeps disabled_at', async () => {
    const result = await runMain(['endpoints', 'list'], { LOCAL_DATA_DIR: dir, GATEWAY_URL: undefined });
    expect(result.code, result.stderr).toBe(0);
    // Before: "disabled" alone, when it was disabled only in --json.
    expect(result.stdout).toMatch(/^data_analysis\s+disabled since \d{4}-\d\d-\d\dT\S+Z \(24h ago\)\s/m);
    const listed = await runMain(['endpoints', 'list', '--json'], { LOCAL_DATA_DIR: dir, GATEWAY_URL: undefined });
    const data = JSON.parse(listed.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'data_analysis');
    expect(data).toMatchObject({ status: 'disabled', disabled_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\S+Z$/) });
  });

  it('a change with no gateway running on the folder says the next start uses it, not "the running gateway"', async () => {
    const result = await runMain(['endpoints', 'resume', 'data_analysis'], {
      LOCAL_DATA_DIR: dir,
      GATEWAY_URL: undefined,
    });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stdout).toMatch(/^data_analysis\s+healthy\s/m);
    // Before: "The running gateway uses this from its next delivery on (no restart)." with none running.
    expect(result.stdout.trim().split('\n').at(-1)).toBe(
      'No gateway runs on this data folder: the next one started on it uses this.',
    );
  });
});

describe('endpoints list with a receiver file that is not JSON (a hand edit, a full disk)', () => {
  let broken: string;
  let file: string;
  beforeAll(async () => {
    broken = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-broken-'));
    // Another receiver paused: the list must still show it as it is.
    await new FileEndpointStore(path.join(broken, 'deliveries')).configure('general', { paused: true }, new Date());
    file = path.join(broken, 'deliveries', 'endpoints', 'deal_analysis.json');
    await writeFile(file, '{"webhook_type": "deal_an');
  });
  afterAll(async () => {
    await rm(broken, { recursive: true, force: true });
  });

  it('lists every other receiver, names the file and says to delete it, and exits 1', async () => {
    const result = await runMain(['endpoints', 'list'], { LOCAL_DATA_DIR: broken });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(
      /^webhook-gateway: \S+deal_analysis\.json is not valid JSON \(.*\): delete it to start that receiver afresh/,
    );
    expect(result.stderr).toContain(file);
    expect(result.stderr).not.toContain('SyntaxError');
    // Before: nothing on stdout, the list stopped at the damaged file.
    const rows = result.stdout.split('\n').map((line) => line.split(/\s+/)[0]);
    expect(rows).toEqual(expect.arrayContaining(['data_analysis', 'lead_analysis', 'general']));
    expect(rows).not.toContain('deal_analysis');
    // Since when, as the console shows it.
    expect(result.stdout).toMatch(/^general\s+paused since \d{4}-\d\d-\d\dT\S+Z \(\S+ ago\)\s/m);
  });

  it('with --json: the good receivers on stdout, the damaged file on stderr, exit 1', async () => {
    const result = await runMain(['endpoints', 'list', '--json'], { LOCAL_DATA_DIR: broken });
    expect(result.code).toBe(1);
    const listed = JSON.parse(result.stdout) as { webhook_type: string; status: string; paused_at: string | null }[];
    expect(listed.map((v) => v.webhook_type)).toEqual(['data_analysis', 'lead_analysis', 'general']);
    expect(listed.find((v) => v.webhook_type === 'general')).toMatchObject({
      status: 'paused',
      paused_at: expect.stringMatching(/^\d{4}-\d\d-\d\dT\S+Z$/),
    });
    expect(result.stderr).toContain(`${file} is not valid JSON`);
  });

  it('pausing another receiver works and shows it, exit 0', async () => {
    const result = await runMain(['endpoints', 'pause', 'lead_analysis', '--json'], { LOCAL_DATA_DIR: broken });
    expect(result.code, result.stderr).toBe(0);
    expect(JSON.parse(result.stdout)).toEqual([
      expect.objectContaining({ webhook_type: 'lead_analysis', status: 'paused' }),
    ]);
  });
});

describe('endpoints pause with a FIFO where its lock should be', () => {
  it('refused at once, naming the lock and what to do (removing it forgets nothing); the others work', async () => {
    const dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-lock-'));
    try {
      await mkdir(path.join(dir, 'deliveries', 'endpoints'), { recursive: true });
      const lock = path.join(dir, 'deliveries', 'endpoints', 'general.json.lock');
      expect(spawnSync('mkfifo', [lock]).status).toBe(0);
      const env = { LOCAL_DATA_DIR: dir, GATEWAY_URL: undefined };
      // Before: the pause read the lock until a writer came (it hung for good, and so did every later change).
      const paused = await runMain(['endpoints', 'pause', 'general'], env);
      expect(paused.code).toBe(1);
      expect(paused.stderr).toBe(
        `webhook-gateway: ${lock} is not a lock the gateway made (it is a FIFO (a named pipe); remove it, then try again)\n`,
      );
      expect((await runMain(['endpoints', 'pause', 'lead_analysis'], env)).code).toBe(0);
      await rm(lock);
      expect((await runMain(['endpoints', 'pause', 'general'], env)).code).toBe(0);
    } finally {
      await rm(dir, { recursive: true, force: true });
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

describe('endpoints list with a receiver whose Retry-After holds its type', () => {
  let dir: string;
  beforeAll(async () => {
    dir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-endpoints-retry-after-'));
    const store = new FileEndpointStore(path.join(dir, 'deliveries'));
    const policy = { failureThreshold: 5, disableAfterMs: 0 };
    await store.recordFailure('lead_analysis', 'HTTP 429', new Date(), policy, undefined, 600_000);
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it('says until when nothing is sent to it (retry_after_until in --json); a resume forgets it', async () => {
    const result = await runMain(['endpoints', 'list'], { LOCAL_DATA_DIR: dir, GATEWAY_URL: undefined });
    expect(result.code, result.stderr).toBe(0);
    // Before: "healthy" alone, while the receiver had asked for nothing for 10 minutes.
    expect(result.stdout).toMatch(
      /^lead_analysis asked for nothing before \d{4}-\d\d-\d\dT\S+Z \(in 10m; its Retry-After\): the next send is allowed then$/m,
    );
    const listed = await runMain(['endpoints', 'list', '--json'], { LOCAL_DATA_DIR: dir, GATEWAY_URL: undefined });
    const lead = JSON.parse(listed.stdout).find((v: { webhook_type: string }) => v.webhook_type === 'lead_analysis');
    expect(lead.retry_after_until).toMatch(/^\d{4}-\d\d-\d\dT\S+Z$/);
    const resumed = await runMain(['endpoints', 'resume', 'lead_analysis', '--json'], {
      LOCAL_DATA_DIR: dir,
      GATEWAY_URL: undefined,
    });
    expect(JSON.parse(resumed.stdout)).toMatchObject([{ webhook_type: 'lead_analysis', retry_after_until: null }]);
    // What the resume released, said (on stderr with --json); before, nothing said the hold was gone.
    expect(resumed.stderr).toMatch(
      /^lead_analysis: its Retry-After \(nothing before \S+Z\) is forgotten: its queued deliveries go out when the schedule finds them due, a redrive or resend is sent at once; another 429 or 503 with a Retry-After holds them again$/m,
    );
    // Resumed again, with nothing held: nothing of the kind is said.
    const again = await runMain(['endpoints', 'resume', 'lead_analysis'], {
      LOCAL_DATA_DIR: dir,
      GATEWAY_URL: undefined,
    });
    expect(again.stdout).not.toContain('Retry-After');
  });
});
