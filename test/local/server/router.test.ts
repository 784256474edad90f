import { describe, expect, it } from 'vitest';
import { requestPath } from '../../../local/server/router.ts';

describe('requestPath: the path of a request target, or null when it is none', () => {
  it.each([
    ['/webhook', '/webhook'],
    ['/console/conversations/webhook_x?fragment=1', '/console/conversations/webhook_x'],
    ['/local/receiver/deal_analysis?a[]=1', '/local/receiver/deal_analysis'],
    ['http://127.0.0.1:3000/health', '/health'],
    ['/console/conversations/%E2%9C%93', '/console/conversations/%E2%9C%93'],
  ])('%s → %s', (target, path) => expect(requestPath(target)).toBe(path));

  it.each(['//[', '*', '/a]b', 'webhook', '/%E0%A4%A', '/local/deliveries/%/redrive', 'http://[/x'])(
    '%s → null',
    (target) => expect(requestPath(target)).toBeNull(),
  );
});
