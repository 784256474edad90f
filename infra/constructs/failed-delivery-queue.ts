import { Duration, RemovalPolicy } from 'aws-cdk-lib';
import { Queue, QueueEncryption } from 'aws-cdk-lib/aws-sqs';
import { Construct } from 'constructs';

export interface FailedDeliveryQueueProps {
  /** Receives after which a message moves to the dead-letter queue. */
  readonly maxReceiveCount?: number;
}

/**
 * The failed-delivery store on AWS: the workflow's QueueFailedDelivery state sends each undelivered result here
 * (`{kind: "failed_delivery", conversation, delivery_error}`) for a later redrive. A message that keeps failing
 * moves to its own dead-letter queue instead of cycling forever.
 */
export class FailedDeliveryQueue extends Construct {
  readonly queue: Queue;
  readonly deadLetterQueue: Queue;

  constructor(scope: Construct, id: string, props: FailedDeliveryQueueProps = {}) {
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
      visibilityTimeout: Duration.minutes(5),
      removalPolicy: RemovalPolicy.RETAIN,
      deadLetterQueue: { queue: this.deadLetterQueue, maxReceiveCount: props.maxReceiveCount ?? 5 },
    });
  }
}
