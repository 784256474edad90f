import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signOutbound } from '../../functions/domain/signatures.ts';
import { runMain } from '../support/cli.ts';
import { folderOf, SEED_REQUEST, startWorld, type TestWorld } from '../support/gateway.ts';

/** One identity per source: the spellings a hostile (or careless) sender tries are all the same source. */
const SECRET = `whsec_${Buffer.from('signed-sys-secret'.padEnd(32, '!')).toString('base64')}`;

let world: TestWorld;
beforeAll(async () => {
  world = await startWorld({
    INBOUND_WEBHOOK_SECRETS: JSON.stringify({ signed_sys: SECRET }),
    RATE_LIMITS: JSON.stringify({ 'Testing.System': { rateLimit: 0.001, burstLimit: 2 } }),
  });
});
afterAll(async () => {
  await world?.close();
});

describe('source_system spellings are one source', () => {
  it('SIGNED_SYS unsigned does not bypass signed_sys’s signature; signed, it lands as signed_sys', async () => {
    for (const spelling of ['SIGNED_SYS', 'Signed.Sys', 'signed-sys']) {
      const res = await world.post({ ...SEED_REQUEST, source_system: spelling });
      expect(res.status, spelling).toBe(401);
      expect(res.body.error.code).toBe('INVALID_SIGNATURE');
    }
    const body = JSON.stringify({ ...SEED_REQUEST, source_system: 'SIGNED.Sys' });
    const headers = signOutbound(SECRET, 'msg_1', new Date(), body) as unknown as Record<string, string>;
    const signed = await world.post(body, headers);
    expect(signed.status).toBe(200);
    expect(signed.body.conversation_id).toMatch(/^webhook_\d{8}_\d{6}_signeds_/);
    const record = await world.getJson(`${folderOf(signed.body.conversation_id)}conversation.json`);
    expect(record.conversation.metadata.source_system).toBe('signed_sys');
    expect(world.receiver.received.at(-1)?.body.source_system).toBe('signed_sys');
  });

  it('TESTING_SYSTEM and Testing.System spend testing_system’s rate limit (configured as Testing.System)', async () => {
    const statuses = [];
    for (const spelling of ['testing_system', 'TESTING_SYSTEM', 'Testing.System', 'testing-system'])
      statuses.push((await world.post({ ...SEED_REQUEST, source_system: spelling })).status);
    expect(statuses).toEqual([200, 200, 429, 429]);
  });

  it('an Idempotency-Key is the same key under any spelling of the source', async () => {
    const other = { ...SEED_REQUEST, source_system: 'key_source' };
    const a = await world.post(other, { 'idempotency-key': 'k-1' });
    const b = await world.post({ ...other, source_system: 'Key.Source' }, { 'idempotency-key': 'k-1' });
    expect(a.status).toBe(200);
    expect(b.body).toEqual(a.body);
  });

  it('ids, exports and list filters agree: every spelling of a filter finds every spelling of the source', async () => {
    const res = await world.post({ ...SEED_REQUEST, source_system: 'Filter.Me', source_process: 'Phase-3' });
    expect(res.status).toBe(200);
    for (const flag of ['filter_me', 'FILTER-ME', 'Filter.Me/phase_3', 'filter_me/PHASE.3']) {
      const listed = await runMain(['conversations', 'list', '--source', flag, '--json'], {
        LOCAL_DATA_DIR: world.dataDir,
      });
      expect(listed.code, listed.stderr).toBe(0);
      expect(
        JSON.parse(listed.stdout).map((c: { conversation_id: string }) => c.conversation_id),
        flag,
      ).toEqual([res.body.conversation_id]);
    }
  });
});
