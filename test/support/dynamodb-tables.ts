import {
  type AttributeValue,
  ConditionalCheckFailedException,
  DeleteItemCommand,
  type DynamoDBClient,
  GetItemCommand,
  PutItemCommand,
  UpdateItemCommand,
} from '@aws-sdk/client-dynamodb';
import type { AwsClientStub } from 'aws-sdk-client-mock';

type Item = Record<string, AttributeValue>;
type Names = Record<string, string> | undefined;
type Values = Record<string, AttributeValue> | undefined;

/**
 * DynamoDB tables on a mocked client, so that a handler runs against what a table would hold: PutItem, GetItem,
 * DeleteItem and UpdateItem (SET of values, then REMOVE) on items keyed by one attribute each, with the condition expressions the
 * stores write — terms joined by AND, those by OR, each `attribute_not_exists(a)`, `a = :v` or `a <= :v` (`#names` resolved) —
 * and ReturnValuesOnConditionCheckFailure honoured. Any other expression throws: a store that starts writing one
 * needs it added here, never a test that passes on an expression the fake ignored.
 */
export function dynamoTables(client: AwsClientStub<DynamoDBClient>, keys: Record<string, string>) {
  const tables = new Map<string, Map<string, Item>>(Object.keys(keys).map((name) => [name, new Map()]));
  const tableOf = (name: string | undefined) => {
    const table = tables.get(name ?? '');
    if (!table) throw new Error(`fake tables: no table ${name}`);
    return { table, key: keys[name!]! };
  };
  const failed = (returnOld: string | undefined, item: Item | undefined) =>
    new ConditionalCheckFailedException({
      message: 'The conditional request failed',
      $metadata: {},
      ...(returnOld === 'ALL_OLD' && item ? { Item: structuredClone(item) } : {}),
    });
  const check = (input: ConditionalInput, item: Item | undefined) => {
    if (input.ConditionExpression === undefined) return;
    if (!holds(input.ConditionExpression, item, input.ExpressionAttributeNames, input.ExpressionAttributeValues))
      throw failed(input.ReturnValuesOnConditionCheckFailure, item);
  };
  client.on(PutItemCommand).callsFake((input) => {
    const { table, key } = tableOf(input.TableName);
    const id = input.Item![key]!.S!;
    check(input, table.get(id));
    table.set(id, structuredClone(input.Item!));
    return {};
  });
  client.on(GetItemCommand).callsFake((input) => {
    const { table, key } = tableOf(input.TableName);
    const item = table.get(input.Key![key]!.S!);
    return item ? { Item: structuredClone(item) } : {};
  });
  client.on(DeleteItemCommand).callsFake((input) => {
    const { table, key } = tableOf(input.TableName);
    const id = input.Key![key]!.S!;
    check(input, table.get(id));
    table.delete(id);
    return {};
  });
  client.on(UpdateItemCommand).callsFake((input) => {
    const { table, key } = tableOf(input.TableName);
    const id = input.Key![key]!.S!;
    const item = table.get(id);
    check(input, item);
    const update = /^SET (.+?)(?: REMOVE (.+))?$/.exec(input.UpdateExpression ?? '');
    if (!update) throw new Error(`fake tables: unsupported update ${input.UpdateExpression}`);
    const updated: Item = structuredClone(item ?? input.Key!);
    for (const assignment of update[1]!.split(',')) {
      const [name, value] = assignment.split('=').map((s) => s.trim());
      if (!/^[#\w]+$/.test(name!) || !/^:\w+$/.test(value!))
        throw new Error(`fake tables: unsupported assignment ${assignment}`);
      updated[attribute(name!, input.ExpressionAttributeNames)] = input.ExpressionAttributeValues![value!]!;
    }
    for (const name of update[2]?.split(',') ?? [])
      delete updated[attribute(name.trim(), input.ExpressionAttributeNames)];
    table.set(id, updated);
    return {};
  });
  return {
    /** The items of a table by key (a live view). */
    items: (name: string) => tableOf(name).table,
  };
}

interface ConditionalInput {
  ConditionExpression?: string;
  ExpressionAttributeNames?: Names;
  ExpressionAttributeValues?: Values;
  ReturnValuesOnConditionCheckFailure?: string;
}

function attribute(name: string, names: Names): string {
  return name.startsWith('#') ? names![name]! : name;
}

function holds(expression: string, item: Item | undefined, names: Names, values: Values): boolean {
  return expression.split(' OR ').some((alternative) =>
    alternative.split(' AND ').every((term) => {
      const absent = /^attribute_not_exists\(([#\w]+)\)$/.exec(term.trim());
      if (absent) return item === undefined || !(attribute(absent[1]!, names) in item);
      const compare = /^([#\w]+) (=|<=) (:\w+)$/.exec(term.trim());
      if (!compare) throw new Error(`fake tables: unsupported condition ${term}`);
      const actual = item?.[attribute(compare[1]!, names)];
      const wanted = values?.[compare[3]!];
      if (!actual || !wanted) return false;
      return compare[2] === '='
        ? JSON.stringify(actual) === JSON.stringify(wanted)
        : Number(actual.N) <= Number(wanted.N);
    }),
  );
}
