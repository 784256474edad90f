import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runMain } from '../../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * The `--json` of conversations show / list and deliveries list on a terminal: a sender's question may carry what a
 * terminal acts on (an ESC or OSC sequence, a C1 CSI, a bidirectional override). JSON.stringify escapes the C0
 * controls but writes C1 controls, U+2028/U+2029 and the overrides raw; on a terminal they are written as their \u
 * escapes (the same JSON value), to a file or a pipe exactly (docs/operations.md).
 */
let world: TestWorld;
let env: Record<string, string | undefined>;
let id: string;
const QUESTION = 'metrics \u001b]0;pwned\u0007 \u009b2J \u202eevil\u2028next';
// biome-ignore lint/suspicious/noControlCharactersInRegex: what must not reach the terminal
const RAW = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/;

beforeAll(async () => {
  world = await startWorld();
  env = { LOCAL_DATA_DIR: world.dataDir, AWS_ENDPOINT_URL_S3: undefined };
  world.receiver.reply(503, 503, 503, 503, 503);
  const res = await world.post({ ...SEED_REQUEST, query: QUESTION, source_system: 'tty_check' });
  expect(res.status, JSON.stringify(res.body)).toBe(200);
  id = res.body.conversation_id;
});
afterAll(async () => {
  await world?.close();
});

async function onTerminal(args: string[]) {
  const tty = Object.getOwnPropertyDescriptor(process.stdout, 'isTTY');
  Object.defineProperty(process.stdout, 'isTTY', { value: true, configurable: true });
  try {
    return await runMain(args, env);
  } finally {
    if (tty) Object.defineProperty(process.stdout, 'isTTY', tty);
    else delete (process.stdout as { isTTY?: boolean }).isTTY;
  }
}

describe('--json on a terminal', () => {
  it.each([
    ['conversations', 'show', 'ID', '--json'],
    ['conversations', 'list', '--json'],
    ['deliveries', 'list', '--json'],
  ])('%s %s %s %s writes no raw control character, the same value as redirected', async (...command) => {
    const args = command.map((a) => (a === 'ID' ? id : a));
    const shown = await onTerminal(args);
    expect(shown.code, shown.stderr).toBe(0);
    expect(shown.stdout).not.toMatch(RAW);
    const redirected = await runMain(args, env);
    expect(redirected.code, redirected.stderr).toBe(0);
    expect(JSON.parse(shown.stdout)).toEqual(JSON.parse(redirected.stdout));
    // Redirected, the question as sent.
    expect(redirected.stdout).toMatch(RAW);
    expect(JSON.stringify(JSON.parse(redirected.stdout))).toContain(JSON.stringify(QUESTION));
  });
});
