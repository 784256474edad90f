import { readdir, readFile, rm, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SEED_REQUEST, startWorld, type TestWorld } from '../../support/gateway.ts';

/**
 * A conversation whose execution history is damaged (cut short, JSON that is not a history): the console's page names
 * the file and what to do, and still shows what it can (the export documents, the other executions), where it said
 * "No conversation <id> (yet)" as though it had never come; the list, which left it out unsaid, links to it (docs/operations.md, "After a crash": the gateway never
 * reads a damaged file as missing). A conversation whose history the retention sweep removed is shown by its export.
 */
let world: TestWorld;

beforeAll(async () => {
  world = await startWorld();
});
afterAll(async () => {
  await world?.close();
});

async function historyFile(id: string): Promise<string> {
  const folder = path.join(world.dataDir, 'executions', id);
  const [name] = await readdir(folder);
  return path.join(folder, name!);
}

const page = async (id: string) => {
  const response = await fetch(`${world.gateway.url}/console/conversations/${id}`);
  return { status: response.status, text: await response.text() };
};

describe('console conversation page, damaged history', () => {
  it('its only history cut short: named with what to do, the export still shown, not "no conversation (yet)"; the list links to it', async () => {
    const id = (await world.post(SEED_REQUEST)).body.conversation_id as string;
    const file = await historyFile(id);
    await writeFile(file, (await readFile(file, 'utf8')).slice(0, 300));
    const { status, text } = await page(id);
    expect(status).toBe(200);
    expect(text).not.toContain('(yet)');
    expect(text).toMatch(
      new RegExp(
        `<li class="err">Left out: ${file.replaceAll('/', '\\/').replaceAll('.', '\\.')} is not valid JSON \\([^)]+\\): mend it or delete it`,
      ),
    );
    expect(text).toContain(`conversations search ${id}`);
    // The export still has the conversation: its documents are on the page.
    expect(text).toContain(`&quot;conversation_id&quot;: &quot;${id}&quot;`);
    // The list, which cannot show it, says it left it out and links to its page.
    const list = await (await fetch(`${world.gateway.url}/console`)).text();
    expect(list).toContain(
      `<p class="err" id="unreadable-conversations">Left out, their history damaged (each page names the file and what to do): <a href="/console/conversations/${id}">${id}</a></p>`,
    );
    expect(list).not.toContain('No conversations yet');
  });

  it('its only history cut short, of a thread: the page links to its thread, read from its export', async () => {
    const id = (await world.post({ ...SEED_REQUEST, thread_id: 'cut-thread' })).body.conversation_id as string;
    const file = await historyFile(id);
    await writeFile(file, (await readFile(file, 'utf8')).slice(0, 300));
    const { text } = await page(id);
    expect(text).toContain(
      '<p id="thread">Of thread <a class="thread" href="/console/threads/testing_system/cut-thread">cut-thread · 1</a>',
    );
  });

  it('one history of several not a history: the others shown, that one named', async () => {
    const id = (await world.post(SEED_REQUEST)).body.conversation_id as string;
    const stray = path.join(world.dataDir, 'executions', id, '20991231T000000000Z_stray.json');
    await writeFile(stray, '{"not": "a history"}');
    const { status, text } = await page(id);
    expect(status).toBe(200);
    expect(text).toContain('<span class="count">1 execution</span>');
    expect(text).toContain(`Left out: ${stray} is not an execution&#39;s history`);
    expect(text).toContain('id="delivery-status" data-status="delivered"');
  });
});

describe('console conversation page, history swept', () => {
  it('its history removed (the retention sweep) but its export kept: the export shown, not "no conversation (yet)"', async () => {
    const id = (await world.post(SEED_REQUEST)).body.conversation_id as string;
    await rm(path.join(world.dataDir, 'executions', id), { recursive: true });
    const { status, text } = await page(id);
    expect(status).toBe(200);
    expect(text).not.toContain('(yet)');
    expect(text).toContain('No execution history of it is kept here (the retention sweep removes it after');
    expect(text).toContain(`&quot;conversation_id&quot;: &quot;${id}&quot;`);
    // An id of neither history nor export is still not found.
    const unknown = id.replace(/_[a-z0-9]{10}$/, '_zzzzzzzzzz');
    expect((await page(unknown)).status).toBe(404);
  });
});
