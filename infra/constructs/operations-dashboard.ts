import { Stack } from 'aws-cdk-lib';
import {
  AlarmStatusWidget,
  Color,
  Dashboard,
  GraphWidget,
  type IAlarm,
  type IMetric,
  MathExpression,
  TextWidget,
} from 'aws-cdk-lib/aws-cloudwatch';
import type { IQueue } from 'aws-cdk-lib/aws-sqs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import { WEBHOOK_TYPES } from '../../functions/domain/conversation.ts';
import { DELIVERY_ATTEMPT_METRICS, DELIVERY_TIME_BY_TYPE_METRIC } from '../../functions/domain/observability.ts';
import {
  CUSTOM_METRICS,
  clientErrorsText,
  customMetric,
  deliveryMetric,
  METRIC_PERIOD,
  SIGNATURE_REJECTED_METRIC,
} from '../metrics.ts';

export interface OperationsDashboardProps {
  readonly conversationStateMachine: IStateMachine;
  /** The accept workflow of POST /webhook with Prefer: respond-async. */
  readonly acceptStateMachine: IStateMachine;
  readonly redeliveryStateMachine: IStateMachine;
  readonly failedDeliveryQueue: IQueue;
  readonly deadLetterQueue: IQueue;
  /** Shown in an alarm status row. */
  readonly alarms: IAlarm[];
  /** Drawn as a line on the agent latency graph (context agentP99AlarmMs). */
  readonly agentP99AlarmMs: number;
}

const WIDTH = 24;
const HEIGHT = 6;

/**
 * One CloudWatch dashboard (`<stack>-<region>-operations`) for running the gateway: the executions of the three workflows
 * (conversation, accept, redelivery), the latencies of the agent and of deliveries (p50/p99), the five custom
 * metrics, and the failed-delivery queue and its dead-letter queue, the requests refused for their signature, with
 * the alarms on top. 5-minute periods throughout.
 */
export class OperationsDashboard extends Construct {
  readonly dashboard: Dashboard;

  constructor(scope: Construct, id: string, props: OperationsDashboardProps) {
    super(scope, id);
    const sum = { statistic: 'Sum', period: METRIC_PERIOD };
    const executions = (sm: IStateMachine): IMetric[] => [
      sm.metricStarted({ ...sum, label: 'Started' }),
      sm.metricSucceeded({ ...sum, label: 'Succeeded', color: Color.GREEN }),
      sm.metricFailed({ ...sum, label: 'Failed', color: Color.RED }),
      sm.metricTimedOut({ ...sum, label: 'Timed out', color: Color.ORANGE }),
    ];
    const percentiles = (metricName: string): IMetric[] => [
      customMetric(this, metricName, 'p50', 'p50'),
      customMetric(this, metricName, 'p99', 'p99'),
    ];
    const graph = (
      title: string,
      left: IMetric[],
      width: number,
      options: Partial<ConstructorParameters<typeof GraphWidget>[0]> = {},
    ) => new GraphWidget({ title, left, width, height: HEIGHT, period: METRIC_PERIOD, ...options });
    const queue = props.failedDeliveryQueue;
    const maximum = { statistic: 'Maximum', period: METRIC_PERIOD };

    this.dashboard = new Dashboard(this, 'Dashboard', {
      // Dashboards are global to the account (not per region): the region keeps the same stack's in two regions apart.
      dashboardName: `${Stack.of(this).stackName}-${Stack.of(this).region}-operations`,
      widgets: [
        [
          new TextWidget({
            width: WIDTH,
            height: 2,
            markdown: [
              '# Webhook conversation gateway',
              `Failed conversation executions include the client errors of the contract, ${clientErrorsText()}: ` +
                'the ConversationServerFailures and AcceptServerFailures alarms leave them out. Saved Logs Insights queries: CloudWatch → Logs Insights → Queries. See docs/deploy.md.',
            ].join('\n\n'),
          }),
        ],
        [new AlarmStatusWidget({ title: 'Alarms', alarms: props.alarms, width: WIDTH, height: 3 })],
        [
          graph('Conversation executions', executions(props.conversationStateMachine), WIDTH / 3),
          graph('Accept executions (Prefer: respond-async)', executions(props.acceptStateMachine), WIDTH / 3),
          graph('Redelivery executions', executions(props.redeliveryStateMachine), WIDTH / 3),
        ],
        [
          graph(
            'Agent latency (Webhook.agent_processing_time, ms)',
            percentiles(CUSTOM_METRICS.agentProcessingTime),
            WIDTH / 3,
            {
              leftAnnotations: [{ value: props.agentP99AlarmMs, label: 'p99 alarm', color: Color.RED }],
            },
          ),
          graph(
            'Delivery latency (Webhook.delivery_response_time, ms)',
            percentiles(CUSTOM_METRICS.deliveryResponseTime),
            WIDTH / 3,
          ),
          graph(
            'Conversation time (Webhook.total_conversation_time, ms)',
            percentiles(CUSTOM_METRICS.totalConversationTime),
            WIDTH / 3,
          ),
        ],
        [
          graph(
            'Delivery attempts by webhook type (failed: solid)',
            WEBHOOK_TYPES.flatMap((type) => [
              deliveryMetric(this, DELIVERY_ATTEMPT_METRICS.failed, type, 'Sum', `${type} failed`),
              deliveryMetric(this, DELIVERY_ATTEMPT_METRICS.delivered, type, 'Sum', `${type} delivered`),
            ]),
            WIDTH / 2,
          ),
          graph(
            'Delivery time by webhook type (p99, ms)',
            WEBHOOK_TYPES.map((type) => deliveryMetric(this, DELIVERY_TIME_BY_TYPE_METRIC, type, 'p99', type)),
            WIDTH / 2,
          ),
        ],
        [
          graph(
            'Request and response size (bytes)',
            [
              customMetric(this, CUSTOM_METRICS.requestSize, 'Average', 'Request size (avg)'),
              customMetric(this, CUSTOM_METRICS.requestSize, 'Maximum', 'Request size (max)'),
              customMetric(this, CUSTOM_METRICS.responseSize, 'Average', 'Response size (avg)'),
              customMetric(this, CUSTOM_METRICS.responseSize, 'Maximum', 'Response size (max)'),
            ],
            WIDTH / 4,
          ),
          graph(
            'Requests refused for their signature (401)',
            [customMetric(this, SIGNATURE_REJECTED_METRIC, 'Sum', 'Signature rejected')],
            WIDTH / 4,
          ),
          graph(
            'Failed-delivery queue depth',
            [
              new MathExpression({
                expression: 'visible + inFlight + delayed',
                usingMetrics: {
                  visible: queue.metricApproximateNumberOfMessagesVisible(maximum),
                  inFlight: queue.metricApproximateNumberOfMessagesNotVisible(maximum),
                  delayed: queue.metric('ApproximateNumberOfMessagesDelayed', maximum),
                },
                label: 'Waiting for redelivery (visible + in flight + delayed)',
                period: METRIC_PERIOD,
              }),
            ],
            WIDTH / 4,
            { right: [queue.metricApproximateAgeOfOldestMessage({ ...maximum, label: 'Age of oldest message (s)' })] },
          ),
          graph(
            'Dead-letter queue depth',
            [
              props.deadLetterQueue.metricApproximateNumberOfMessagesVisible({
                ...maximum,
                label: 'Dead letters',
                color: Color.RED,
              }),
            ],
            WIDTH / 4,
            {
              // SQS deletes a dead letter after 14 days (FailedDeliveryDeadLetterAge fires at 7).
              right: [
                props.deadLetterQueue.metricApproximateAgeOfOldestMessage({
                  ...maximum,
                  label: 'Age of the oldest dead letter (s)',
                }),
              ],
            },
          ),
        ],
      ],
    });
  }
}
