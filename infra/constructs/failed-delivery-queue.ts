import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Queue, QueueEncryption, type QueuePolicy } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

/**
 * How long SQS keeps a message in either queue (its maximum), counted from the time it was sent to the queue: a
 * message the redrive policy moves to the dead-letter queue keeps that time, one the scheduler or an operator sends
 * there gets a new one (docs/deploy.md, "Failed deliveries on AWS").
 */
export const FAILED_DELIVERY_RETENTION_DAYS = 14;

export interface FailedDeliveryQueueProps {
  /** Receives after which a message moves to the dead-letter queue (a consumer that keeps failing on it). */
  readonly maxReceiveCount?: number;
  /**
   * How long a received message stays hidden when the consumer does not say: longer than a consumer's work on it
   * (one redelivery execution, 60 s at most) and than a whole scheduler run.
   */
  readonly visibilityTimeout: Duration;
}

/**
 * The failed-delivery store on AWS: the workflow's QueueFailedDelivery state sends each undelivered result here
 * (`{kind: "failed_delivery", conversation, delivery_error}`); the redelivery scheduler works through it. A message
 * the scheduler cannot act on (received maxReceiveCount times without being deleted: an unreadable body, or SQS
 * refusing its replacement) moves to the dead-letter queue instead of cycling forever; the scheduler itself sends
 * exhausted, permanently failed and repeatedly failing (runs_failed) envelopes there. Whatever is in the dead-letter
 * queue is deleted by SQS FAILED_DELIVERY_RETENTION_DAYS after it was sent (the alarms in gateway-alarms.ts).
 */
export class FailedDeliveryQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: FailedDeliveryQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(FAILED_DELIVERY_RETENTION_DAYS),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(FAILED_DELIVERY_RETENTION_DAYS),
      visibilityTimeout: props.visibilityTimeout,
      removalPolicy: RemovalPolicy.RETAIN,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });
    // The TLS-only policies (enforceSSL) stay with the queues cdk destroy keeps.
    for (const queue of [this.queue, this.deadLetterQueue])
      (queue.node.findChild('Policy') as QueuePolicy).applyRemovalPolicy(RemovalPolicy.RETAIN);
  }
}
