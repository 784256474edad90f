import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../functions/shared/settings.ts';
import { handleSampleAgentInvoke, SAMPLE_AGENT_SLOW_MS, sampleSlowMs } from '../../../local/server/sample-agent.ts';

describe('[sample:slow]', () => {
  it('by default answers well inside the agent timeout, so the slow answer still arrives', () => {
    expect(sampleSlowMs({})).toBe(SAMPLE_AGENT_SLOW_MS);
    expect(SAMPLE_AGENT_SLOW_MS).toBeLessThan(DEFAULTS.agentTimeoutMs / 2);
  });

  it('SAMPLE_AGENT_SLOW_MS sets the wait (above the timeout to see a 504); a value that is no duration is ignored', () => {
    expect(sampleSlowMs({ SAMPLE_AGENT_SLOW_MS: '25000' })).toBe(25_000);
    expect(sampleSlowMs({ SAMPLE_AGENT_SLOW_MS: '0' })).toBe(0);
    expect(sampleSlowMs({ SAMPLE_AGENT_SLOW_MS: '5s' })).toBe(SAMPLE_AGENT_SLOW_MS);
  });
});

describe('[sample:slow] whose caller has gone', () => {
  it('stops waiting (an engine that gave up on it at the agent timeout must not keep a stopped gateway alive)', async () => {
    process.env.SAMPLE_AGENT_SLOW_MS = String(3_600_000);
    let handled!: Promise<void>;
    let arrived!: () => void;
    const inHandler = new Promise<void>((resolve) => {
      arrived = resolve;
    });
    const server = createServer((req, res) => {
      handled = handleSampleAgentInvoke('agent', 'agent', req, res);
      req.once('end', arrived);
    });
    try {
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
      const { port } = server.address() as AddressInfo;
      const caller = new AbortController();
      const call = fetch(`http://127.0.0.1:${port}/2015-03-31/functions/agent/invocations`, {
        method: 'POST',
        body: JSON.stringify({ query: 'deals [sample:slow]' }),
        signal: caller.signal,
      }).catch((error: Error) => error);
      await inHandler;
      caller.abort();
      await call;
      // Settles once the caller has gone, not an hour later.
      await expect(handled).resolves.toBeUndefined();
    } finally {
      delete process.env.SAMPLE_AGENT_SLOW_MS;
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
  });
});
