/**
 * The seeds a randomized test runs, from an environment variable (CRASH_SWEEP_SEEDS: docs/development.md): a seed
 * (`7`), a range (`1-40`) or a comma list of both (`1,3,5-9`), each a whole number from 0. Unset or empty: `defaults`.
 * Anything else throws, naming the variable, its value and what it takes, so that a mistyped value stops the file with
 * that message instead of running no test (vitest's "No test found").
 */
export function seedsFrom(name: string, text: string | undefined, defaults: number[]): number[] {
  if (!text?.trim()) return defaults;
  const wrong = (why: string) =>
    new Error(
      `${name}=${JSON.stringify(text)}: ${why}; it takes a seed (7), a range (1-40) or a comma list of both ` +
        '(1,3,5-9), each a whole number from 0',
    );
  return text.split(',').flatMap((raw) => {
    const part = raw.trim();
    const match = /^(\d+)(?:-(\d+))?$/.exec(part);
    if (!match) throw wrong(part ? `"${part}" is not a seed or a range` : 'an empty item in the list');
    const from = Number(match[1]);
    const to = match[2] === undefined ? from : Number(match[2]);
    if (to < from) throw wrong(`the range "${part}" ends before it starts`);
    return Array.from({ length: to - from + 1 }, (_, i) => from + i);
  });
}
