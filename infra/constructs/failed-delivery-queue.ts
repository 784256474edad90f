import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

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
 * the scheduler keeps failing on (received maxReceiveCount times without being deleted) moves to the dead-letter
 * queue instead of cycling forever; the scheduler also sends exhausted or permanently failed envelopes there.
 */
export class FailedDeliveryQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: FailedDeliveryQueueProps) {
    super(scope, id);
    this.deadLetterQueue = new Queue(this, 'DeadLetterQueue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      removalPolicy: RemovalPolicy.RETAIN,
    });
    this.queue = new Queue(this, 'Queue', {
      encryption: QueueEncryption.SQS_MANAGED,
      enforceSSL: true,
      retentionPeriod: Duration.days(14),
      visibilityTimeout: props.visibilityTimeout,
      removalPolicy: RemovalPolicy.RETAIN,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });
  }
}
