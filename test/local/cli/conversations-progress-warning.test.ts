import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ExecutionStore } from '../../../local/store/execution-store.ts';
import { runMain } from '../../support/cli.ts';
import { ageHistories, saveKeyedHistory } from '../../support/history-reads.ts';

/**
 * On a terminal, the first `--key` on a data folder of an earlier version shows how far it got on one stderr line
 * rewritten in place (docs/operations.md, "Runbook"). A damaged history it met meanwhile was named on that same line,
 * run on after the progress text; the warning now has a line of its own, and the progress line resumes below it.
 */
const COUNT = 110;
let dataDir: string;
let damaged: string;

beforeAll(async () => {
  dataDir = await mkdtemp(path.join(tmpdir(), 'webhook-gateway-progress-warning-'));
  const store = new ExecutionStore(dataDir);
  const ids: string[] = [];
  for (let n = 0; n < COUNT; n++) ids.push(await saveKeyedHistory(store, n, 'pw'));
  // Among the oldest (read last, once the progress line is shown): a second history cut short by a crash.
  damaged = path.join(store.dir, ids[1]!, 'run-cut.json');
  await writeFile(damaged, '{"execution_name": "run-cut", "ev');
  await ageHistories(store, ids);
});
afterAll(async () => {
  await rm(dataDir, { recursive: true, force: true });
});

/** What a terminal shows of `text`: `\r` goes back to the line's start, ESC[K clears the rest of it. */
function screen(text: string): string[] {
  const lines: string[] = [''];
  let column = 0;
  for (let i = 0; i < text.length; i++) {
    const line = lines.length - 1;
    if (text.startsWith('\x1b[K', i)) {
      lines[line] = lines[line]!.slice(0, column);
      i += 2;
    } else if (text[i] === '\r') column = 0;
    else if (text[i] === '\n') {
      lines.push('');
      column = 0;
    } else {
      const current = lines[line]!;
      lines[line] = current.slice(0, column) + text[i] + current.slice(column + 1);
      column++;
    }
  }
  return lines;
}

describe('a damaged history met while the summary index fills, on a terminal', () => {
  it('is named on a line of its own; the progress line resumes below it and ends the output', async () => {
    const tty = Object.getOwnPropertyDescriptor(process.stderr, 'isTTY');
    Object.defineProperty(process.stderr, 'isTTY', { value: true, configurable: true });
    try {
      const run = await runMain(['conversations', 'list', '--key', 'msg_7', '--json'], { LOCAL_DATA_DIR: dataDir });
      expect(run.code, run.stderr).toBe(0);
      const shown = screen(run.stderr);
      // Before: "webhook-gateway: filling the summary index (once): 100/110 conversationswebhook-gateway: …/run-cut.json…"
      const warning = shown.findIndex((line) => line.includes('run-cut.json'));
      expect(shown[warning]).toMatch(/^webhook-gateway: .*: that execution is left out$/);
      expect(shown[warning]?.startsWith(`webhook-gateway: ${damaged} is not valid JSON`)).toBe(true);
      expect(shown.slice(warning + 1)).toEqual([
        `webhook-gateway: filling the summary index (once): ${COUNT}/${COUNT} conversations`,
        '',
      ]);
    } finally {
      if (tty) Object.defineProperty(process.stderr, 'isTTY', tty);
      else delete (process.stderr as { isTTY?: boolean }).isTTY;
    }
  });
});
