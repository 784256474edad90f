/**
 * The load generator, run as its own process (`node --import tsx bench/load-client.ts '<json>'`) so that it does
 * not share a core's event loop with the gateway. Prints one JSON line with autocannon's figures and the
 * conversation id of every 2xx answer (the orchestrator checks each one's export: an answer whose export failed is
 * not a successful conversation).
 */
import { readFileSync } from 'node:fs';
import autocannon from 'autocannon';

export interface LoadSpec {
  url: string;
  bodyFile: string;
  connections: number;
  durationSeconds: number;
}

export interface LoadFigures {
  connections: number;
  duration_s: number;
  requests_total: number;
  requests_per_s: number;
  ok_2xx: number;
  non_2xx: number;
  errors: number;
  timeouts: number;
  latency_ms: { p50: number; p90: number; p99: number; max: number; mean: number };
  status_codes: Record<string, number>;
  /** CLOCK_MONOTONIC µs (process.hrtime) when the load started and ended: the same clock as V8 CPU profiles. */
  window_us: [number, number];
  /** CPU this load-generator process used during the load (user + system, ms). */
  client_cpu_ms: number;
  /** The conversation_id of each 2xx answer. */
  conversation_ids: string[];
}

const spec = JSON.parse(process.argv[2] ?? '{}') as LoadSpec;
const body = readFileSync(spec.bodyFile, 'utf8');
const cpuBefore = process.cpuUsage();
const startedUs = Number(process.hrtime.bigint() / 1000n);
const conversationIds: string[] = [];
const result = await autocannon({
  url: spec.url,
  requests: [
    {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body,
      onResponse: (status, text) => {
        const id = status >= 200 && status < 300 ? /"conversation_id":"([^"]+)"/.exec(text)?.[1] : undefined;
        if (id) conversationIds.push(id);
      },
    },
  ],
  connections: spec.connections,
  pipelining: 1,
  duration: spec.durationSeconds,
  timeout: 30,
});
const finishedUs = Number(process.hrtime.bigint() / 1000n);
const cpuUsed = process.cpuUsage(cpuBefore);
const statusCodes: Record<string, number> = {};
for (const [code, stat] of Object.entries(result.statusCodeStats ?? {})) statusCodes[code] = stat.count;
const total = Object.values(statusCodes).reduce((a, b) => a + b, 0);
const figures: LoadFigures = {
  connections: spec.connections,
  duration_s: result.duration,
  requests_total: total,
  requests_per_s: Math.round((result['2xx'] / result.duration) * 10) / 10,
  ok_2xx: result['2xx'],
  non_2xx: result.non2xx,
  errors: result.errors,
  timeouts: result.timeouts,
  latency_ms: {
    p50: result.latency.p50,
    p90: result.latency.p90,
    p99: result.latency.p99,
    max: result.latency.max,
    mean: result.latency.mean,
  },
  status_codes: statusCodes,
  window_us: [startedUs, finishedUs],
  client_cpu_ms: Math.round((cpuUsed.user + cpuUsed.system) / 1000),
  conversation_ids: conversationIds,
};
process.stdout.write(`${JSON.stringify(figures)}\n`);
