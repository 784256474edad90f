import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PROJECT_ROOT } from '../../../local/paths.ts';
import { checkEnvironment, handlerLogLevel, resolveOptions } from '../../../local/server/config.ts';
import { runCommand } from '../../support/children.ts';
import { runCli, runMain } from '../../support/cli.ts';
import { startWorld } from '../../support/gateway.ts';

const BIN = path.join(PROJECT_ROOT, 'bin', 'webhook-gateway.mjs');

/** `webhook-gateway start` with a bad setting or a busy port: one clear line, exit 1, nothing left running. */
let dataDir: string;
beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-config-'));
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

describe('start refuses bad configuration before it listens', () => {
  it.each([
    [{ PORT: 'abc' }, /PORT must be a port number \(0-65535\), got "abc"/],
    [{ LOCAL_S3_PORT: '70000' }, /LOCAL_S3_PORT must be a port number/],
    // Bound to one LAN address, the gateway could not reach its own sample agent and receiver: every conversation failed.
    [{ HOST: '192.0.2.2' }, /HOST must be one of 127\.0\.0\.1, localhost, ::1, 0\.0\.0\.0, :: .*, got "192\.0\.2\.2"/],
    [{ HOST: '127.0.0.2' }, /HOST must be one of/],
    [
      { RATE_LIMITS: '{"crm": {"rateLimit": -1, "burstLimit": 2}}' },
      /RATE_LIMITS\.crm: rateLimit and burstLimit must be positive/,
    ],
    [{ REDELIVERY_SCHEDULE: '5s,later' }, /REDELIVERY_SCHEDULE: "later" is not a duration/],
    // Before, it started: each wait of 0 spent an automatic attempt at the very next sweep, without waiting.
    [{ REDELIVERY_SCHEDULE: '5s,0s' }, /^REDELIVERY_SCHEDULE: "0s" is no wait \(each wait is at least 1ms\)$/],
    // Before, it started, and on AWS every agent call would have failed on a name no Lambda function can have.
    [
      { MANAGER_AGENT_FUNCTION_NAME: 'my agent!' },
      /^MANAGER_AGENT_FUNCTION_NAME must be a Lambda function name \(letters, digits, - and _, at most 64\), name:alias or a full function ARN, got "my agent!"$/,
    ],
    [{ INBOUND_WEBHOOK_SECRETS: '{"crm": "secret"}' }, /INBOUND_WEBHOOK_SECRETS\.crm\[0\]: secrets must be "whsec_"/],
    // Before, it started, and every signed request of the source got 500 INTERNAL_ERROR (the base64 did not decode).
    [
      { INBOUND_WEBHOOK_SECRETS: '{"crm": "whsec_AAAAAAAAAAAAAAA=AAAA"}' },
      /^INBOUND_WEBHOOK_SECRETS\.crm\[0\]: secrets must be "whsec_" followed by base64 \(at least 16 characters\): this one's base64 does not decode/,
    ],
    [{ GENERAL_WEBHOOK_URL: 'http://crm.example.com/hook' }, /GENERAL_WEBHOOK_URL: delivery URL must use https/],
    [
      { OUTBOUND_WEBHOOK_QUEUE_URL: 'https://sqs.us-east-1.amazonaws.com/1/q' },
      /OUTBOUND_WEBHOOK_QUEUE_URL is not used/,
    ],
    [{ DELIVERY_TIMEOUT_MS: '3s' }, /DELIVERY_TIMEOUT_MS must be a positive whole number, got "3s"/],
    [{ ASYNC_AGENT_TIMEOUT_MS: '300000' }, /ASYNC_AGENT_TIMEOUT_MS \(300000\) does not fit .* at most 260000/],
    // The timeouts the synth refuses: before, `npm start` took them and the budget cut them quietly (a 60 s agent
    // timeout answered 504 after 20 s; a 1 s response timeout gave the agent 1 s and queued every delivery).
    [
      { MANAGER_AGENT_TIMEOUT_MS: '60000' },
      /MANAGER_AGENT_TIMEOUT_MS \(60000\) does not fit in RESPONSE_TIMEOUT_MS \(29000\): at most 21000/,
    ],
    [{ MANAGER_AGENT_TIMEOUT_MS: '500' }, /MANAGER_AGENT_TIMEOUT_MS must be at least 1000 \(ms\), got 500/],
    [{ ASYNC_AGENT_TIMEOUT_MS: '999' }, /ASYNC_AGENT_TIMEOUT_MS must be at least 1000 \(ms\), got 999/],
    [{ RESPONSE_TIMEOUT_MS: '1000' }, /RESPONSE_TIMEOUT_MS must be from 9000 to 300000 \(ms\), got 1000/],
    [{ RESPONSE_TIMEOUT_MS: '400000' }, /RESPONSE_TIMEOUT_MS must be from 9000 to 300000 \(ms\), got 400000/],
    // Before, the message blamed ASYNC_AGENT_TIMEOUT_MS ("at most -399999728000").
    [{ DELIVERY_TIMEOUT_MS: '99999999999' }, /^DELIVERY_TIMEOUT_MS must be from 100 to 24000 \(ms\), got 99999999999$/],
    [{ DELIVERY_TIMEOUT_MS: '50' }, /DELIVERY_TIMEOUT_MS must be from 100 to 24000 \(ms\), got 50/],
    // Before, it started and, the timer overflowing, swept the redelivery schedule every millisecond.
    [
      { REDELIVERY_POLL_MS: '3000000000' },
      /REDELIVERY_POLL_MS must be a whole number of milliseconds up to 2147483647 \(0 turns the schedule off\), got "3000000000"/,
    ],
    [{ REDELIVERY_POLL_MS: '1s' }, /REDELIVERY_POLL_MS must be a whole number of milliseconds/],
    // Before, it started and the handlers logged at INFO (Powertools ignores a level it does not know).
    // Before, the embedded S3 refused it without naming the variable: 'bucket name "Bad_Bucket" is not valid'.
    [
      { CONVERSATION_EXPORT_S3_BUCKET: 'Bad_Bucket' },
      /^CONVERSATION_EXPORT_S3_BUCKET must be an S3 bucket name \(3 to 63 lower-case letters, digits, dots and hyphens\), got "Bad_Bucket"$/,
    ],
    // Before, it started: a captured signed request replayed a minute later, within its signature's tolerance, ran
    // again, its key gone (docs/security.md#idempotency-keys).
    [
      { IDEMPOTENCY_TTL_SECONDS: '60' },
      /^IDEMPOTENCY_TTL_SECONDS must be at least 300 \(seconds: a signed request replayed within its signature's 5-minute tolerance must find its key\), got "60"$/,
    ],
    [{ LOG_LEVEL: 'verbose' }, /LOG_LEVEL must be one of DEBUG, INFO, WARN, ERROR \(any case\), got "verbose"/],
    // Before, each of these started: the flag and the slow agent's wait were ignored, and an endpoint without its
    // scheme failed every conversation (502 Lambda.Unknown).
    [{ LOCAL_LOG_TO_STDOUT: 'yes' }, /LOCAL_LOG_TO_STDOUT must be true or false, got "yes"/],
    [{ SAMPLE_AGENT_SLOW_MS: '5s' }, /SAMPLE_AGENT_SLOW_MS must be a whole number of milliseconds/],
    [{ AWS_ENDPOINT_URL_LAMBDA: 'localhost:9001' }, /AWS_ENDPOINT_URL_LAMBDA must be an http:\/\/ or https:\/\/ URL/],
    [{ AWS_ENDPOINT_URL_S3: '127.0.0.1:9000' }, /AWS_ENDPOINT_URL_S3 must be an http:\/\/ or https:\/\/ URL/],
    [
      { LOCAL_HISTORY_DAYS: '30d' },
      /LOCAL_HISTORY_DAYS must be a whole number of days \(0 keeps everything\), got "30d"/,
    ],
    [
      { RATE_LIMITS: '{"crm_sync": {"rateLimit": 1, "burstLimit": 1}, "CRM.Sync": {"rateLimit": 9, "burstLimit": 9}}' },
      /RATE_LIMITS: "crm_sync" and "CRM.Sync" name the same source/,
    ],
  ])('%j', (env, message) => {
    expect(() => {
      resolveOptions({}, env);
      checkEnvironment(env);
    }).toThrow(message);
  });

  it('takes the flag in any case and an endpoint with its scheme', () => {
    expect(() =>
      resolveOptions({}, { LOCAL_LOG_TO_STDOUT: 'TRUE', AWS_ENDPOINT_URL_LAMBDA: 'https://lambda.example:443' }),
    ).not.toThrow();
  });

  it('an agent timeout that fits a raised response timeout is taken, as the synth takes it', () => {
    const checked = checkEnvironment({ RESPONSE_TIMEOUT_MS: '60000', MANAGER_AGENT_TIMEOUT_MS: '52000' });
    expect([checked.responseTimeoutMs, checked.agentTimeoutMs]).toEqual([60_000, 52_000]);
  });

  it('LOG_LEVEL in lower case reaches the handlers in upper case, as the synth sets it (Powertools would log at INFO)', async () => {
    expect(handlerLogLevel({})).toBe('INFO');
    const world = await startWorld({ LOG_LEVEL: 'debug' });
    try {
      expect(process.env.LOG_LEVEL).toBe('DEBUG');
    } finally {
      await world.close();
      delete process.env.LOG_LEVEL;
    }
  });

  it.each(['127.0.0.1', 'localhost', '::1', '0.0.0.0', '::'])('HOST=%s is taken', (host) => {
    expect(resolveOptions({}, { HOST: host }).host).toBe(host);
  });

  // Before, both said "port N is already in use: … set PORT / LOCAL_S3_PORT", which left a user who had changed PORT
  // to start a second gateway wondering which port: the first gateway's embedded S3 holds the default LOCAL_S3_PORT.
  it.each([
    ['LOCAL_S3_PORT', ' (the embedded S3)'],
    ['PORT', ''],
  ])(
    'a busy %s: one line naming the variable and its port, exit 1 (no crash, no stack trace)',
    async (variable, what) => {
      const busy = createServer();
      await new Promise<void>((r) => busy.listen(0, '127.0.0.1', r));
      const port = (busy.address() as { port: number }).port;
      try {
        const result = await runCli(['start'], {
          PORT: '0',
          LOCAL_S3_PORT: '0',
          [variable]: String(port),
          LOCAL_DATA_DIR: dataDir,
          AWS_ENDPOINT_URL_S3: undefined,
        });
        expect(result.code).toBe(1);
        expect(result.stderr).toBe(
          `webhook-gateway: ${variable} ${port}${what} is already in use: stop the other process, or set ${variable} to another port (0 picks a free one)\n`,
        );
      } finally {
        busy.close();
      }
    },
  );

  // A PUBLIC_URL that is no base URL (a query would end up inside every status URL) stops the start in one line.
  it('PUBLIC_URL that is not an http(s) base URL: one line naming it and what it must be, exit 1', async () => {
    const started = await runCli(['start'], {
      PORT: '0',
      LOCAL_S3_PORT: '0',
      LOCAL_DATA_DIR: path.join(dataDir, 'public-url'),
      PUBLIC_URL: 'gateway.example.com/gw',
    });
    expect(started.code).toBe(1);
    expect(started.stderr).toBe(
      'webhook-gateway: PUBLIC_URL must be the http:// or https:// URL callers reach the gateway by, a path prefix allowed and nothing else (no user, query or fragment), e.g. https://gateway.example.com/gw, got "gateway.example.com/gw"\n',
    );
  });

  // Before: "<file> is a file where the gateway keeps a folder …: move it aside or delete it", the file being the user's
  // (or the system's: LOCAL_DATA_DIR=/dev/null/x said to delete /dev/null).
  it('LOCAL_DATA_DIR naming a file, or under one: one line saying so and to set LOCAL_DATA_DIR, exit 1', async () => {
    const file = path.join(dataDir, 'notes.txt');
    await writeFile(file, 'not a folder');
    const started = await runCli(['start'], { PORT: '0', LOCAL_S3_PORT: '0', LOCAL_DATA_DIR: file });
    expect(started.code).toBe(1);
    expect(started.stderr).toBe(
      `webhook-gateway: the data folder ${file} (LOCAL_DATA_DIR) is a file, not a folder: set LOCAL_DATA_DIR to a folder (made if missing), or move that file aside\n`,
    );
    const under = path.join(file, 'data');
    const listed = await runMain(['conversations', 'list'], { LOCAL_DATA_DIR: under });
    expect(listed.code).toBe(1);
    expect(listed.stderr).toBe(
      `webhook-gateway: the data folder ${under} (LOCAL_DATA_DIR) lies under ${file}, a file, not a folder: set LOCAL_DATA_DIR to a folder (made if missing)\n`,
    );
  });

  // Before, Node's recursive mkdir looped for ever (thousands of mkdir a second): /proc/x's mkdir says ENOENT while
  // /proc is there. Run as a child: in this process the loop would block the test's own timeout.
  it.skipIf(process.platform !== 'linux')(
    'LOCAL_DATA_DIR that cannot be made (/proc/x): one line naming it and why, exit 1, for start and a command',
    async () => {
      const line =
        'webhook-gateway: the data folder /proc/x (LOCAL_DATA_DIR) cannot be made: /proc takes no new folders (ENOENT); set LOCAL_DATA_DIR to a folder this user can write (made if missing)\n';
      for (const args of [['start'], ['conversations', 'query', 'select 1'], ['endpoints', 'list']]) {
        const result = await runCli(args, { PORT: '0', LOCAL_S3_PORT: '0', LOCAL_DATA_DIR: '/proc/x' });
        expect({ args, code: result.code, stdout: result.stdout, stderr: result.stderr }).toEqual({
          args,
          code: 1,
          stdout: '',
          stderr: line,
        });
      }
    },
    30_000,
  );

  // Before: "Error: ENOENT: no such file or directory, mkdir '<folder>/logs'" (Node's recursive mkdir on EROFS). A
  // read-only file system is a tmpfs mounted read-only in a mount namespace of the command's own (root on Linux only).
  const canMountReadOnly =
    process.platform === 'linux' &&
    process.getuid?.() === 0 &&
    spawnSync('unshare', ['-m', 'true'], { stdio: 'ignore' }).status === 0;
  it.skipIf(!canMountReadOnly)(
    'a data folder on a read-only file system: start says so in one line, exit 1; a listing still reads it',
    async () => {
      const mount = path.join(dataDir, 'read-only');
      await mkdir(mount, { recursive: true });
      const inside = (command: string) =>
        runCommand(
          'unshare',
          [
            '-m',
            'sh',
            '-c',
            `mount -t tmpfs -o ro tmpfs "$1" && exec "$2" "$3" ${command}`,
            'sh',
            mount,
            process.execPath,
            BIN,
          ],
          { env: { ...process.env, PORT: '0', LOCAL_S3_PORT: '0', LOCAL_DATA_DIR: mount } },
        );
      const started = await inside('start');
      expect({ code: started.code, stderr: started.stderr }).toEqual({
        code: 1,
        stderr: `webhook-gateway: the data folder ${mount} (LOCAL_DATA_DIR) is on a read-only file system (EROFS): the gateway keeps its state there; set LOCAL_DATA_DIR to a folder this user can write (made if missing)\n`,
      });
      const listed = await inside('conversations list');
      expect(listed.code, listed.stderr).toBe(0);
      expect(listed.stdout).toMatch(/^No conversations yet in /);
    },
    30_000,
  );

  // Before, each was ignored and the gateway started on PORT (3000 by default), as if `--port 4000` had been taken.
  it.each([[['--port', '4000']], [['--port=4000']], [['4000']]])(
    'start %j: refused, naming the environment variables, exit 1, nothing started, no data folder made',
    async (args) => {
      const notMade = path.join(dataDir, 'not-made');
      const result = await runMain(['start', ...args], { PORT: '0', LOCAL_S3_PORT: '0', LOCAL_DATA_DIR: notMade });
      expect(existsSync(notMade)).toBe(false);
      expect(result.code).toBe(1);
      expect(result.stdout).toBe('');
      expect(result.stderr).toBe(
        `webhook-gateway: start takes no arguments, got "${args.join(' ')}": its settings are environment variables, e.g. PORT=4000 npx webhook-gateway start (every variable: docs/configuration.md)\n`,
      );
    },
  );

  it('PORT and LOCAL_S3_PORT the same: one line saying so, not "already in use: stop the other process"', async () => {
    const probe = createServer();
    await new Promise<void>((r) => probe.listen(0, '127.0.0.1', r));
    const port = (probe.address() as { port: number }).port;
    await new Promise((r) => probe.close(r));
    const result = await runCli(['start'], {
      PORT: String(port),
      LOCAL_S3_PORT: String(port),
      LOCAL_DATA_DIR: dataDir,
      AWS_ENDPOINT_URL_S3: undefined,
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `webhook-gateway: PORT and LOCAL_S3_PORT are both ${port}: the gateway and its embedded S3 each need a port of their own; set one of them to another (0 picks a free one)\n`,
    );
  });

  it('a data folder whose delivery secrets file was cut short: one line naming the file, exit 1, nothing left running', async () => {
    const folder = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-cut-secrets-'));
    try {
      const file = path.join(folder, 'delivery-signing-secrets.json');
      await writeFile(file, '{\n  "deal_analysis": "whsec_VrPt3qZu', { mode: 0o600 });
      // Before, the embedded S3 stayed listening after the error and the command never ended.
      // Without the file an earlier in-process gateway of this test file left in process.env: the data folder's.
      const result = await runCli(['start'], {
        PORT: '0',
        LOCAL_S3_PORT: '0',
        LOCAL_DATA_DIR: folder,
        DELIVERY_SIGNING_SECRETS_FILE: undefined,
      });
      expect(result.code).toBe(1);
      expect(result.stderr).toMatch(new RegExp(`^webhook-gateway: ${file} is not valid JSON \\(`));
      expect(result.stderr.trim().split('\n')).toHaveLength(1);
    } finally {
      await rm(folder, { recursive: true, force: true });
    }
  });

  it('a bad setting through the real command: one line, exit 1', async () => {
    const result = await runCli(['start'], {
      PORT: '0',
      LOCAL_S3_PORT: '0',
      LOCAL_DATA_DIR: dataDir,
      RATE_LIMITS: 'nope',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toMatch(/^webhook-gateway: RATE_LIMITS must be JSON/);
    expect(result.stderr.trim().split('\n')).toHaveLength(1);
  });

  // Before, the commands other than start printed the error's class too: 'webhook-gateway: SettingsError: PORT must …'.
  it.each([
    [['conversations', 'list'], { PORT: 'abc' }, 'PORT must be a port number (0-65535), got "abc"'],
    [
      ['conversations', 'query', 'SELECT 1'],
      { LOCAL_S3_PORT: '-1' },
      'LOCAL_S3_PORT must be a port number (0-65535), got "-1"',
    ],
    [
      ['endpoints', 'list'],
      { REDELIVERY_SCHEDULE: 'bad' },
      'REDELIVERY_SCHEDULE: "bad" is not a duration (use e.g. 5s, 5m, 2h)',
    ],
  ])('%j with a bad setting: its message alone, exit 1', async (args, env, message) => {
    const result = await runMain(args, { LOCAL_DATA_DIR: dataDir, ...env });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`webhook-gateway: ${message}\n`);
  });

  it("a handler setting's message is the whole line, as the local runtime's are (before: 'SettingsError: …')", async () => {
    const result = await runCli(['start'], {
      PORT: '0',
      LOCAL_S3_PORT: '0',
      LOCAL_DATA_DIR: dataDir,
      THREAD_TTL_DAYS: '0',
    });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe('webhook-gateway: THREAD_TTL_DAYS must be a positive whole number, got "0"\n');
  });
});
