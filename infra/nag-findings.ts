import { Stack } from 'aws-cdk-lib';
import type { CfnBucket, IBucket } from 'aws-cdk-lib/aws-s3';

/**
 * How cdk-nag names an object-prefix resource of a bucket in its AwsSolutions-IAM5 finding (`<LogicalId.Arn>/prefix/*`
 * for a bucket of the stack, the ARN for an imported one), so an acknowledgment can name exactly that finding.
 */
export function bucketObjectsFinding(bucket: IBucket, objects: string): string {
  const cfn = bucket.node.defaultChild as CfnBucket | undefined;
  const arn = cfn ? `<${Stack.of(bucket).getLogicalId(cfn)}.Arn>` : `arn:<AWS::Partition>:s3:::${bucket.bucketName}`;
  return `${arn}/${objects}`;
}
