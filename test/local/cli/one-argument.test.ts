import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';

const A = 'webhook_20261203_014742_testing_phase3valid_c65swbapsr';
const B = 'webhook_20261203_014606_testing_phase3valid_si9anxv77f';

/** A command that acts on one conversation refuses a second id rather than act on the first alone. */
describe('commands that take one conversation id', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'one-argument-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it.each([
    [['conversations', 'show', A, B], 'conversations show takes one conversation id'],
    [['deliveries', 'redrive', A, B], 'deliveries redrive takes one conversation id (or --all)'],
    [['deliveries', 'resend', A, B, '--url', 'http://127.0.0.1:9'], 'deliveries resend takes one conversation id'],
  ])('%j: refused, nothing done', async (args, says) => {
    const result = await runMain(args, { LOCAL_DATA_DIR: dataDir, GATEWAY_URL: undefined });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`webhook-gateway: ${says}, got 2: ${A} ${B} (run it once for each)\n`);
  });
});

/** endpoints pause|resume|set act on one receiver: `pause deal_analysis general` paused deal_analysis alone. */
describe('endpoints commands take one webhook type', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'one-type-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it.each([
    [['endpoints', 'pause', 'deal_analysis', 'general']],
    [['endpoints', 'resume', 'deal_analysis', 'general']],
    [['endpoints', 'set', 'deal_analysis', 'general', '--rate', '5/s']],
  ])('%j: refused, no receiver changed', async (args) => {
    const result = await runMain(args, { LOCAL_DATA_DIR: dataDir, GATEWAY_URL: undefined });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      `webhook-gateway: endpoints ${args[1]} takes one webhook type, got 2: deal_analysis general (run it once for each)\n`,
    );
    const listed = await runMain(['endpoints', 'list', '--json'], { LOCAL_DATA_DIR: dataDir, GATEWAY_URL: undefined });
    for (const receiver of JSON.parse(listed.stdout) as { status: string; rate_per_second?: number }[]) {
      expect(receiver.status).not.toBe('paused');
      expect(receiver.rate_per_second ?? null).toBeNull();
    }
  });

  it('endpoints list takes no type', async () => {
    const result = await runMain(['endpoints', 'list', 'deal_analysis'], { LOCAL_DATA_DIR: dataDir });
    expect(result.code).toBe(1);
    expect(result.stderr).toBe(
      'webhook-gateway: endpoints list takes no arguments, got "deal_analysis" (it lists every type)\n',
    );
  });
});

/**
 * Commands that take no argument refused one in node:util's words ("Unexpected argument 'x'. This command does not take
 * positional arguments"), which did not say how to ask for what was meant: the refusal names the flag that does.
 */
describe('deliveries list and sign take no arguments', () => {
  let dataDir: string;
  beforeAll(async () => {
    dataDir = await mkdtemp(path.join(tmpdir(), 'no-argument-'));
  });
  afterAll(() => rm(dataDir, { recursive: true, force: true }));

  it.each([
    [['deliveries', 'list', 'deal_analysis'], '"deal_analysis" (one type\'s: deliveries list --type deal_analysis)'],
    [['deliveries', 'list', 'dead'], '"dead" (deliveries in one state: deliveries list --state dead)'],
    [['deliveries', 'list', A], `"${A}" (one conversation's delivery: conversations show ${A})`],
    [
      ['deliveries', 'list', 'x', 'y'],
      '"x y" (it takes --state pending|dead|settled|all, --type T, --limit N, --json)',
    ],
  ])('%j names the flag', async (args, says) => {
    const result = await runMain(args, { LOCAL_DATA_DIR: dataDir });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(`webhook-gateway: deliveries list takes no arguments, got ${says}\n`);
  });

  it('sign says where the body goes', async () => {
    const result = await runMain(['sign', '{"query":"hi"}'], {
      WEBHOOK_SECRET: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
    });
    expect(result.code).toBe(1);
    expect(result.stdout).toBe('');
    expect(result.stderr).toBe(
      'webhook-gateway: sign takes no arguments, got "{"query":"hi"}": the body you will send goes in --data JSON or --file PATH (or sign a status read with --status CONVERSATION_ID)\n',
    );
  });
});
