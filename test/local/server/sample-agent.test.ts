import { describe, expect, it } from 'vitest';
import { DEFAULTS } from '../../../functions/shared/settings.ts';
import { SAMPLE_AGENT_SLOW_MS, sampleSlowMs } from '../../../local/server/sample-agent.ts';

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
