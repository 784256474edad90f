import type * as JsonFiles from '../../local/store/json-files.ts';

/**
 * local/store/json-files.ts with every path its readJson reads pushed into `reads`: what a test's
 * `vi.mock(import('…/local/store/json-files.ts'), async (original) => (await import('…/read-recorder.ts')).recordReads(reads, await original()))`
 * returns, to tell which files a command or a console request read. Imports nothing of the gateway at run time, so
 * the mock's factory may load it.
 */
export function recordReads(reads: string[], actual: typeof JsonFiles): typeof JsonFiles {
  return {
    ...actual,
    readJson: ((file: string) => {
      reads.push(file);
      return actual.readJson(file);
    }) as typeof actual.readJson,
  };
}
