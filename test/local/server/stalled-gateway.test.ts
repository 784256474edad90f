import { existsSync } from 'node:fs';
import { readdir, readFile, stat, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { until } from '../../support/cli.ts';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';
import { anotherHost } from '../../support/pid-namespaces.ts';

/**
 * A gateway that stood still for more than 30 s (SIGSTOP, a paused container) while a conversation was in flight, and
 * meanwhile a start in another container took its data folder over (and recovers that conversation from the journal:
 * docs/operations.md, "Processes in other containers"). Woken, it runs what was waiting first (the agent's answer
 * that came in meanwhile) before its 10 s timer looks at gateway.pid. Before, it went on with that conversation:
 * journaled it, delivered it and wrote its history into the other gateway's folder, while the other gateway's recovery
 * finished it too (delivered twice). Now the journal's line before the next step asks whether the folder is still its
 * own, which after such a stand-still reads gateway.pid then and there: the step does not run, nothing is delivered or
 * written, and the gateway says it lost the folder. The stand-still is its clock (performance.now) moved on 31 s.
 */
let world: TestWorld;
const errors: string[] = [];
const theirs = `1@${anotherHost()} 4242`;
let journalBefore: string[] = [];
let historiesBefore: string[] = [];
let filesBefore: string[] = [];

/** Every file of the data folder with its size and time, but gateway.pid (the other gateway's, written by the test). */
async function files(dataDir: string): Promise<string[]> {
  const names = (await readdir(dataDir, { recursive: true })).map(String).filter((n) => n !== 'gateway.pid');
  const stamped = await Promise.all(
    names.map(async (n) => {
      const s = await stat(path.join(dataDir, n)).catch(() => null);
      return s?.isFile() ? `${n} ${s.size} ${s.mtimeMs}` : null;
    }),
  );
  return stamped.filter((n): n is string => n !== null).sort();
}

async function histories(dataDir: string): Promise<string[]> {
  const dir = path.join(dataDir, 'executions');
  const names = existsSync(dir) ? await readdir(dir, { recursive: true }) : [];
  return names
    .map(String)
    .filter((n) => n.endsWith('.json'))
    .sort();
}

async function journalLines(dataDir: string): Promise<string[]> {
  const dir = path.join(dataDir, 'journal');
  const names = existsSync(dir) ? (await readdir(dir)).filter((n) => n.endsWith('.jsonl')).sort() : [];
  const lines: string[] = [];
  for (const name of names) lines.push(...(await readFile(path.join(dir, name), 'utf8')).split('\n').filter(Boolean));
  return lines;
}

beforeAll(async () => {
  vi.useFakeTimers({ toFake: ['performance'] });
  world = await startWorld();
  vi.spyOn(console, 'error').mockImplementation((line: string) => {
    errors.push(line);
  });
  world.agent.behave(() => ({ payload: { response: 'Top deals: Acme', agent: 'test-agent' }, held: true }));
  const accepted = await world.post(SEED_REQUEST, { prefer: 'respond-async' });
  expect(accepted.status).toBe(202);
  await until('the agent is called', () => world.agent.invocations.length === 1);
  journalBefore = await journalLines(world.dataDir);
  historiesBefore = await histories(world.dataDir); // the accepting run's (the 202), written before it stood still
  filesBefore = await files(world.dataDir);
  // It stands still 31 s; meanwhile another container's start takes the folder over. Then the agent's answer is in.
  await writeFile(path.join(world.dataDir, 'gateway.pid'), theirs);
  vi.advanceTimersByTime(31_000);
  world.agent.letGo();
  await world.gateway.dataDirLost;
  await world.gateway.idle();
});
afterAll(async () => {
  vi.useRealTimers();
  vi.restoreAllMocks();
  await world?.close();
});

describe('a gateway woken after another gateway took its data folder over', () => {
  it('says it lost the folder, as soon as the waiting answer would be journaled', () => {
    expect(errors).toEqual([
      `webhook-gateway: ${path.join(world.dataDir, 'gateway.pid')} now names another gateway (1@${anotherHost()}): it took ${world.dataDir} over while this one stood still for more than 30 s; stop this gateway`,
    ]);
  });

  it('delivers nothing, exports nothing and writes no journal line or history into the other’s folder', async () => {
    expect(world.receiver.received).toHaveLength(0);
    expect(await journalLines(world.dataDir)).toEqual(journalBefore);
    expect(historiesBefore).toHaveLength(1);
    expect(await histories(world.dataDir)).toEqual(historiesBefore);
    expect(await world.listKeys()).toEqual([]);
    expect(await readFile(path.join(world.dataDir, 'gateway.pid'), 'utf8')).toBe(theirs);
    // Nothing else of the folder was written either (a status, a key freed, a receiver's health, an envelope).
    expect(await files(world.dataDir)).toEqual(filesBefore);
  });
});
