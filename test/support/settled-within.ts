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

/**
 * settledWithin, then, for a run that ended, the stalled endpoint's connections waited for (trackConnections): each
 * call the run's deadline cut has been read by the endpoint, so a test asserts on every request the run sent (in the
 * same process, a request written just before the cut is read only at the event loop's next look at the sockets,
 * which a loaded machine had not given it when a test asserted at once, and the next test found it among its own).
 */
export async function settledAndRead<T>(run: Promise<T>, boundMs: number, endpoint: { allClosed(): Promise<void> }) {
  const result = await settledWithin(run, boundMs);
  if (!result.still) await settledWithin(endpoint.allClosed(), boundMs);
  return result;
}
