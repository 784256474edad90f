import { describe, expect, it } from 'vitest';
import { deliveriesTable } from '../../../local/cli/shared.ts';
import { cell } from '../../../local/cli/table.ts';
import { deadEnvelope } from '../../support/aws-fixtures.ts';

/**
 * A receiver's long error cut to fit a table cell says it was cut: before, `deliveries list` and `endpoints list`
 * showed `HTTP 404: {"success":false,"error":{"code":"NOT_`, which reads as the receiver's whole (broken) answer.
 */
describe('long cells', () => {
  it('are cut with … and keep to their width; short ones are as they were, white space as one space', () => {
    expect(cell('HTTP 404: {"success":false,\n  "error":{"code":"NOT_FOUND"}}', 20)).toBe('HTTP 404: {"success…');
    expect(cell('HTTP 404: {"success…', 20)).toHaveLength(20);
    expect(cell('network error:\tECONNREFUSED', 60)).toBe('network error: ECONNREFUSED');
    expect(cell(null, 10)).toBe('');
  });

  it('deliveries list marks a last error it cut short', () => {
    const envelope = {
      ...deadEnvelope(),
      last_error: `HTTP 404: ${JSON.stringify({ error: { code: 'NOT_FOUND', message: 'x'.repeat(80) } })}`,
    };
    const row = deliveriesTable([envelope]).split('\n')[2]!;
    expect(row).toContain('HTTP 404: {"error":{"code":"NOT_FOUND","message…  ');
  });
});
