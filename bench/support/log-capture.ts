/**
 * Diverts the handlers' JSON lines (Powertools log lines and EMF metric lines, which Lambda would send to
 * CloudWatch Logs) away from the console and counts them: lines and UTF-8 bytes per kind. Other output passes.
 */
export interface LogCounts {
  log_lines: number;
  log_bytes: number;
  emf_lines: number;
  emf_bytes: number;
  samples: string[];
}

export interface LogCapture {
  counts: LogCounts;
  reset(): void;
  restore(): void;
}

export function captureHandlerLogs(keepSamples = 0): LogCapture {
  const counts: LogCounts = { log_lines: 0, log_bytes: 0, emf_lines: 0, emf_bytes: 0, samples: [] };
  const originals: [NodeJS.WriteStream, NodeJS.WriteStream['write']][] = [];
  for (const stream of [process.stdout, process.stderr]) {
    const original = stream.write;
    originals.push([stream, original]);
    const write = original.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : null;
      if (text?.startsWith('{"')) {
        const isEmf = text.startsWith('{"_aws"');
        const isLog = text.includes('"level":');
        if (isEmf || isLog) {
          const bytes = Buffer.byteLength(text.endsWith('\n') ? text : `${text}\n`);
          if (isEmf) {
            counts.emf_lines += 1;
            counts.emf_bytes += bytes;
          } else {
            counts.log_lines += 1;
            counts.log_bytes += bytes;
          }
          if (counts.samples.length < keepSamples) counts.samples.push(text.trimEnd());
          const callback = rest.find((r) => typeof r === 'function') as (() => void) | undefined;
          callback?.();
          return true;
        }
      }
      return write(chunk, ...rest);
    }) as NodeJS.WriteStream['write'];
  }
  return {
    counts,
    reset() {
      counts.log_lines = counts.log_bytes = counts.emf_lines = counts.emf_bytes = 0;
      counts.samples.length = 0;
    },
    restore() {
      for (const [stream, original] of originals) stream.write = original;
    },
  };
}
