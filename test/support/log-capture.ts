import { vi } from 'vitest';

/** Capture the JSON lines the handlers write (Powertools logs and EMF metrics) on stdout and stderr. */
export function captureJsonLines() {
  const lines: Record<string, any>[] = [];
  const grab = (chunk: unknown) => {
    const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : '';
    for (const line of text.split('\n')) {
      if (!line.startsWith('{')) continue;
      try {
        lines.push(JSON.parse(line));
      } catch {
        // not a JSON line
      }
    }
  };
  const out = vi.spyOn(process.stdout, 'write').mockImplementation(((chunk: unknown) => {
    grab(chunk);
    return true;
  }) as never);
  const err = vi.spyOn(process.stderr, 'write').mockImplementation(((chunk: unknown) => {
    grab(chunk);
    return true;
  }) as never);
  return {
    lines,
    events: (conversationId?: string) =>
      lines.filter((l) => l.event_type && (!conversationId || l.conversation_id === conversationId)),
    metrics: () => lines.filter((l) => l._aws),
    restore() {
      out.mockRestore();
      err.mockRestore();
    },
  };
}
