import { Stack } from 'aws-cdk-lib';
import { CfnQueryDefinition, type ILogGroup } from 'aws-cdk-lib/aws-logs';
import { Construct } from 'constructs';

/**
 * The three CloudWatch Logs Insights queries of docs/deploy.md#monitoring, verbatim as operators know them:
 * they run unchanged on the WEBHOOK_* lines the functions log (docs/contract.md#logs). "your_system" is the placeholder the
 * operator replaces with a source system before running the first one.
 */
export const SEED_QUERIES = {
  'Find All Conversations for a Source System': [
    'fields @timestamp, conversation_id, webhook_metadata.source_system',
    '| filter event_type = "WEBHOOK_CONVERSATION_COMPLETED"',
    '| filter webhook_metadata.source_system = "your_system"',
    '| sort @timestamp desc',
  ].join('\n'),
  'Track Processing Performance': [
    'fields @timestamp, conversation_id, total_time_ms',
    '| filter event_type = "WEBHOOK_CONVERSATION_COMPLETED"',
    '| stats avg(total_time_ms), max(total_time_ms), min(total_time_ms) by bin(5m)',
  ].join('\n'),
  'Monitor Delivery Success Rates': [
    'fields @timestamp, delivery_status, webhook_type',
    '| filter event_type = "WEBHOOK_CONVERSATION_COMPLETED"  ',
    '| stats count() by delivery_status, webhook_type',
  ].join('\n'),
} as const;

export interface SavedQueriesProps {
  /** Where the WEBHOOK_* lines land: the four stage functions' log groups (validate, classify, deliver, export). */
  readonly logGroups: ILogGroup[];
}

/**
 * The three queries of docs/deploy.md#monitoring saved as Logs Insights query definitions (CloudWatch → Logs Insights →
 * Saved queries, in the folder named after the stack), preselecting the stage functions' log groups.
 */
export class SavedQueries extends Construct {
  readonly definitions: CfnQueryDefinition[];

  constructor(scope: Construct, id: string, props: SavedQueriesProps) {
    super(scope, id);
    const folder = Stack.of(this).stackName;
    this.definitions = Object.entries(SEED_QUERIES).map(
      ([title, queryString], i) =>
        new CfnQueryDefinition(this, `Query${i + 1}`, {
          name: `${folder}/${title}`,
          queryString,
          logGroupNames: props.logGroups.map((group) => group.logGroupName),
          queryLanguage: 'CWLI',
        }),
    );
  }
}
