import { Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import { PolicyStatement } from 'aws-cdk-lib/aws-iam';
import {
  BlockPublicAccess,
  Bucket,
  BucketEncryption,
  type IBucket,
  ObjectOwnership,
  StorageClass,
  TransitionDefaultMinimumObjectSize,
} from 'aws-cdk-lib/aws-s3';
import { Construct } from 'constructs';
import { EXPORT_PREFIX } from '../../functions/domain/export-formats.ts';

/**
 * What S3 asks of a principal that writes (`kms:GenerateDataKey`) or reads (`kms:Decrypt`) an object of a bucket
 * whose default encryption is a customer-managed KMS key (context exportBucketKmsKeyArn): the key, used through S3
 * only (`kms:ViaService`, S3's endpoint in any region, the bucket may be in another one, `.amazonaws.com.cn` in the
 * China partition cdk.json targets too). Without it every PUT of the exports fails
 * AccessDenied, the AWS-managed `aws/s3` key needing no grant (Amazon S3 user guide, "Using server-side encryption
 * with AWS KMS keys (SSE-KMS)"). None without a key.
 */
export function exportKeyStatement(keyArn: string | undefined, use: 'write' | 'read'): PolicyStatement | undefined {
  if (!keyArn) return undefined;
  return new PolicyStatement({
    actions: [use === 'write' ? 'kms:GenerateDataKey' : 'kms:Decrypt'],
    resources: [keyArn],
    conditions: { StringLike: { 'kms:ViaService': ['s3.*.amazonaws.com', 's3.*.amazonaws.com.cn'] } },
  });
}

export interface ConversationExportBucketProps {
  /** Export into this existing bucket instead of creating one (its settings are left as they are). */
  readonly existingBucketName?: string;
  /**
   * Days until exports of 128 KB or more move to Standard-IA; 0: never. S3 moves no smaller object (its default
   * minimum, written into the template): a conversation's four files are a few KB each, so most stay in Standard,
   * which is cheaper for them (Standard-IA bills every object as at least 128 KB).
   */
  readonly transitionDays: number;
  /** Days until exports are deleted; 0: never. */
  readonly expirationDays: number;
}

/**
 * The S3 bucket the Export stage writes every conversation to (`conversation-history/YYYY/MM/DD/<id>/`): the
 * system of record. Private, encrypted, TLS only, versioned (a re-run overwrites the same keys), retained when the
 * stack is deleted.
 */
export class ConversationExportBucket extends Construct {
  readonly bucket: IBucket;
  /** False when the stack exports into an existing bucket. */
  readonly created: boolean;

  constructor(scope: Construct, id: string, props: ConversationExportBucketProps) {
    super(scope, id);
    if (props.existingBucketName) {
      this.bucket = Bucket.fromBucketName(this, 'Bucket', props.existingBucketName);
      this.created = false;
      return;
    }
    const bucket = new Bucket(this, 'Bucket', {
      blockPublicAccess: BlockPublicAccess.BLOCK_ALL,
      encryption: BucketEncryption.S3_MANAGED,
      enforceSSL: true,
      minimumTLSVersion: 1.2,
      objectOwnership: ObjectOwnership.BUCKET_OWNER_ENFORCED,
      versioned: true,
      removalPolicy: RemovalPolicy.RETAIN,
      transitionDefaultMinimumObjectSize: TransitionDefaultMinimumObjectSize.ALL_STORAGE_CLASSES_128_K,
      lifecycleRules: [
        {
          id: 'conversation-history',
          prefix: `${EXPORT_PREFIX}/`,
          transitions:
            props.transitionDays > 0
              ? [{ storageClass: StorageClass.INFREQUENT_ACCESS, transitionAfter: Duration.days(props.transitionDays) }]
              : undefined,
          expiration: props.expirationDays > 0 ? Duration.days(props.expirationDays) : undefined,
          noncurrentVersionExpiration: Duration.days(30),
          abortIncompleteMultipartUploadAfter: Duration.days(1),
        },
      ],
    });
    // Kept with the bucket, so a bucket the stack leaves behind (cdk destroy, exportBucketName set) stays TLS-only.
    bucket.policy?.applyRemovalPolicy(RemovalPolicy.RETAIN);
    Validations.of(bucket).acknowledge({
      id: 'AwsSolutions-S1',
      reason:
        'Only the Export function writes here and it logs every write (WEBHOOK_CONVERSATION_EXPORTED); reads are audited with CloudTrail data events where required, not with a second access-log bucket.',
    });
    this.bucket = bucket;
    this.created = true;
  }
}
