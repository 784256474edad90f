import { afterEach, describe, expect, it, vi } from 'vitest';
import {
  DELIVERY_ATTEMPT_METRICS,
  DELIVERY_QUEUED_METRIC,
  DELIVERY_TIME_BY_TYPE_METRIC,
  WEBHOOK_TYPE_DIMENSION,
} from '../../../functions/domain/observability.ts';
import { recordDeliveryAttempt, recordDeliveryQueued } from '../../../functions/shared/events.ts';
import { MetricUnit, metrics } from '../../../functions/shared/powertools.ts';
import { captureJsonLines } from '../../support/log-capture.ts';

/**
 * The per-type delivery metrics (functions/shared/events.ts): an EMF line each, with the `webhook_type` dimension,
 * from a Metrics made once per type (docs/performance.md §2, perf24).
 */
afterEach(() => {
  vi.restoreAllMocks();
});

/** A line without its time, which differs from run to run. */
const timeless = (line: Record<string, any>) => ({ ...line, _aws: { ...line._aws, Timestamp: 0 } });

describe('the per-type delivery metrics', () => {
  it('are the lines a fresh single metric with the type as a dimension gives, from one Metrics per type', () => {
    const made = vi.spyOn(metrics, 'singleMetric');
    const capture = captureJsonLines();
    try {
      recordDeliveryAttempt('deal_analysis', true, 40);
      recordDeliveryAttempt('deal_analysis', false, 55);
      recordDeliveryQueued('deal_analysis');
      recordDeliveryAttempt('general', true, 12);
    } finally {
      capture.restore();
    }
    // Before: a Metrics made for each metric (7 here).
    expect(made).toHaveBeenCalledTimes(2);
    made.mockRestore();

    const expected = captureJsonLines();
    try {
      const fresh = (type: string, name: string, unit: (typeof MetricUnit)[keyof typeof MetricUnit], value: number) =>
        metrics.singleMetric().addDimension(WEBHOOK_TYPE_DIMENSION, type).addMetric(name, unit, value);
      fresh('deal_analysis', DELIVERY_ATTEMPT_METRICS.delivered, MetricUnit.Count, 1);
      fresh('deal_analysis', DELIVERY_TIME_BY_TYPE_METRIC, MetricUnit.Milliseconds, 40);
      fresh('deal_analysis', DELIVERY_ATTEMPT_METRICS.failed, MetricUnit.Count, 1);
      fresh('deal_analysis', DELIVERY_TIME_BY_TYPE_METRIC, MetricUnit.Milliseconds, 55);
      fresh('deal_analysis', DELIVERY_QUEUED_METRIC, MetricUnit.Count, 1);
      fresh('general', DELIVERY_ATTEMPT_METRICS.delivered, MetricUnit.Count, 1);
      fresh('general', DELIVERY_TIME_BY_TYPE_METRIC, MetricUnit.Milliseconds, 12);
    } finally {
      expected.restore();
    }
    expect(capture.metrics().map(timeless)).toEqual(expected.metrics().map(timeless));
    expect(capture.metrics().map((l) => l._aws.CloudWatchMetrics[0].Dimensions)).toEqual(
      Array(7).fill([['service', WEBHOOK_TYPE_DIMENSION]]),
    );
  });
});
