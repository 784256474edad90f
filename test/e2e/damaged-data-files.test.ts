import { writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { idempotencyPk } from '../../functions/domain/idempotency.ts';
import type { RequestSummary } from '../../local/server/config.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/**
 * A file of the data folder damaged under the running gateway (a full disk, a crash of another tool, a hand edit):
 * each request that needs it is told so, the operator's line names the file and what to do (docs/operations.md,
 * "After a crash"), and nothing runs twice or is answered as if the file were not there.
 */
let world: TestWorld;
const operatorLog: RequestSummary[] = [];
beforeAll(async () => {
  world = await startWorld({}, { onExecution: (summary) => operatorLog.push(summary) });
});
afterAll(async () => {
  await world?.close();
});
beforeEach(() => {
  world.agent.reset();
  world.receiver.reset();
  operatorLog.length = 0;
});

const key = () => `order-${Math.random().toString(36).slice(2)}`;
const keyFile = (k: string) => path.join(world.dataDir, 'idempotency', `${idempotencyPk('testing_system', k)}.json`);

/** What a damaged file may hold: cut short, empty, not JSON at all, or JSON that is no record. */
const DAMAGED: [string, string][] = [
  ['cut short', '{"pk":"abc","status":"compl'],
  ['empty', ''],
  ['not JSON', '\u0000\u0000\u0000\u0000'],
  ['JSON of another shape', '{"hello":"world"}'],
  ['null', 'null'],
];

describe('a damaged idempotency record: never a second conversation', () => {
  it.each(DAMAGED)(
    'the key file %s: a retry with that Idempotency-Key is refused 500 STATE_UNREADABLE, runs nothing, and the operator line names the file',
    async (_what, damaged) => {
      const k = key();
      const first = await world.post(SEED_REQUEST, { 'idempotency-key': k });
      expect(first.status).toBe(200);
      await writeFile(keyFile(k), damaged);
      operatorLog.length = 0;
      const retry = await world.post(SEED_REQUEST, { 'idempotency-key': k });
      expect(retry.status).toBe(500);
      expect(retry.body.success).toBe(false);
      expect(retry.body.error.code).toBe('STATE_UNREADABLE');
      expect(retry.body.error.message).toContain('Idempotency-Key');
      expect(retry.body.error.message).not.toContain(world.dataDir); // the caller is not told the operator's paths
      expect(world.agent.invocations).toHaveLength(1);
      expect(world.receiver.received).toHaveLength(1);
      expect(operatorLog).toHaveLength(1);
      expect(operatorLog[0]!.http_status).toBe(500);
      expect(operatorLog[0]!.detail).toContain(keyFile(k));
      expect(operatorLog[0]!.detail).toContain('delete it');
      // Still refused: the gateway never takes a damaged record for a free key.
      expect((await world.post(SEED_REQUEST, { 'idempotency-key': k })).status).toBe(500);
      expect(world.agent.invocations).toHaveLength(1);
    },
  );
});
