/**
 * The part of the DynamoDB SDK the stores use (idempotency, status, threads, attempt log, receivers), imported by them
 * on first use only (`await import()`): a function's asset carries it as a file of its own, loaded with the first
 * DynamoDB call instead of at cold start, and holding only these commands, where an import of the whole package
 * would keep every one (infra/stage-bundle.ts; docs/performance.md §3). A command a store starts to send is added here.
 */
// Every command is sent through the `sdk` that `dynamoDb()` (./dynamodb.ts) returns, which static analysis does not
// follow: hence the @public tags.
export {
  /** @public */
  BatchGetItemCommand,
  /** @public */
  DeleteItemCommand,
  DynamoDBClient,
  /** @public */
  GetItemCommand,
  /** @public */
  PutItemCommand,
  /** @public */
  QueryCommand,
  /** @public */
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
export { cachedSignalSends } from './signal-sends.ts';
