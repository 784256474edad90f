/**
 * How a run ended — its output, or the error it threw — or `still: true` when it was still going after `boundMs`: a
 * test of a time limit reports a run past it as such instead of waiting for it (the clients' own limits end a stalled
 * call only after ≈ 6.2 s, functions/shared/clients/request-limits.ts).
 */
export async function settledWithin<T>(run: Promise<T>, boundMs: number) {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<{ still: true }>((resolve) => {
    timer = setTimeout(() => resolve({ still: true }), boundMs);
  });
  const outcome = run.then(
    (output) => ({ output }),
    (error: Error) => ({ error }),
  );
  const result = await Promise.race([outcome, bound]);
  clearTimeout(timer);
  return result as { output?: T; error?: Error; still?: true };
}
