import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { FILTER_STATUSES } from '../../local/history/conversation-filters.ts';
import { PROJECT_ROOT } from '../../local/paths.ts';

/**
 * docs/operations.md "Runbook" names every value `--status` takes (the console's list offers the same):
 * it named completed, failed, interrupted and five delivery statuses, while the commands also took in_progress,
 * timed_out, aborted and pending, which a user reading a list's rows meets and could not know to filter by.
 */
const OPERATIONS = readFileSync(path.join(PROJECT_ROOT, 'docs', 'operations.md'), 'utf8');
const RUNBOOK = OPERATIONS.slice(OPERATIONS.indexOf('## Runbook'));
const filters = RUNBOOK.slice(RUNBOOK.indexOf('share the filters'), RUNBOOK.indexOf('One case rule'));
const statusValues = filters.slice(filters.indexOf('`--status`'), filters.indexOf('`--since`'));

describe('docs/operations.md: the values of the list filters', () => {
  it.each(FILTER_STATUSES)('--status %s is named', (status) => {
    expect(statusValues).toContain(`\`${status}\``);
  });
});
