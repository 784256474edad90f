import path from 'node:path';
import { expect } from 'vitest';
import { runMain } from './cli.ts';

/**
 * Which conversations' execution histories were read, from the files a test's `readJson` spy recorded (each test file
 * mocks `local/store/json-files.ts` to push every path it reads into `reads`).
 */
export function historiesRead(reads: string[], dataDir: string): string[] {
  const executions = path.join(dataDir, 'executions');
  return [
    ...new Set(
      reads.filter((f) => path.dirname(path.dirname(f)) === executions).map((f) => path.basename(path.dirname(f))),
    ),
  ].sort();
}

/** `conversations list --json …args` on a data folder, `reads` emptied first: the ids it lists, sorted. */
export async function listedIds(reads: string[], dataDir: string, ...args: string[]): Promise<string[]> {
  reads.length = 0;
  const run = await runMain(['conversations', 'list', '--json', ...args], { LOCAL_DATA_DIR: dataDir });
  expect(run.code, run.stderr).toBe(0);
  return (JSON.parse(run.stdout) as { conversation_id: string }[]).map((r) => r.conversation_id).sort();
}
