/**
 * `npm run schemas`: writes the published contract, generated from the valibot schemas
 * (functions/domain/request.ts, functions/domain/contract-schemas.ts) with @valibot/to-json-schema:
 * docs/openapi.json (OpenAPI 3.1: POST /webhook with its asynchronous 202, GET /conversations/{id}, GET /health,
 * their error bodies and headers, and the outbound delivery as a webhook) and docs/schemas/*.schema.json (JSON Schema 2020-12: the request, the delivery payload, the four export
 * files). test/scripts/schemas.test.ts fails when the committed files differ from what this writes.
 */
import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { toJsonSchema } from '@valibot/to-json-schema';
import type { GenericSchema } from 'valibot';
import {
  AcceptedBodySchema,
  DeliveryPayloadSchema,
  ErrorBodySchema,
  EXPORT_SCHEMAS,
  HealthBodySchema,
  StatusBodySchema,
  SuccessBodySchema,
} from '../functions/domain/contract-schemas.ts';
import { WebhookRequestSchema } from '../functions/domain/request.ts';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

/** A JSON Schema 2020-12 of `schema`; what JSON Schema cannot say (checks in code) is left to the description. */
function jsonSchema(schema: GenericSchema, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { $schema, ...rest } = toJsonSchema(schema, { target: 'draft-2020-12', errorMode: 'ignore' }) as Record<
    string,
    unknown
  >;
  return { $schema, ...extra, ...rest };
}

const REQUEST_DESCRIPTION =
  'One question for the manager agent (docs/contract.md#post-webhook). Also checked in code: `query` is trimmed ' +
  'before its length is checked, and its length is counted in UTF-16 code units (an emoji counts as 2; JSON ' +
  "Schema's maxLength counts it as 1); `metadata` is at most 16 KB as JSON, nests at most 20 levels and has no " +
  '__proto__, constructor or prototype keys; neither holds an unpaired surrogate (a \\uD800-\\uDFFF escape without its pair), nor `metadata` a number past 1.8e308.';

const ERROR_STATUSES: Record<string, string> = {
  '400': 'INVALID_JSON, VALIDATION_ERROR (error.details lists each field) or IDEMPOTENCY_KEY_REUSED',
  '401': 'INVALID_SIGNATURE: the source signs and the Standard Webhooks signature is missing, stale or wrong',
  '403':
    'INVALID_API_KEY (with per-source API keys): a missing or wrong x-api-key; SOURCE_MISMATCH: the key is not the ' +
    "source_system's own (a key acts only as its source); FORBIDDEN (local only): a non-loopback Host while the " +
    'gateway listens on loopback',
  '409':
    'IDEMPOTENCY_CONFLICT: the same Idempotency-Key is still being processed; retry after Retry-After to get its answer',
  '413': 'PAYLOAD_TOO_LARGE: the execution input built from the body exceeds 256 KB (a body of 256 KB does)',
  '415': 'UNSUPPORTED_MEDIA_TYPE: Content-Type is not application/json',
  '429':
    'RATE_LIMITED: the source exceeded its rate, burst or daily quota; Retry-After says when to come back (on AWS a constant: 1 over the rate or burst, 3600 over the daily quota, which resets at 00:00 UTC; locally the seconds until the next request is let through, or until 00:00 UTC)',
  '500':
    'INTERNAL_ERROR: the workflow failed without a Catch (an agent answer over 256 KB), or locally a bug; ' +
    'STATE_UNREADABLE (local only): a file of the data folder the request needs is damaged (a damaged idempotency ' +
    'record: nothing was run); send it again once the operator has mended or deleted it',
  '502': 'AGENT_ERROR: the manager agent failed; error.conversation_id names the conversation, exported as failed',
  '503':
    'NOT_STARTED (Prefer: respond-async): accepted but its run could not be started, send it again; or (on AWS) ' +
    'Lambda throttled Validate on every try, nothing ran; STARTING or STOPPING (local only): the gateway is still ' +
    'starting or is stopping; STORAGE_UNAVAILABLE: the gateway cannot write (or read) its data folder (Retry-After: ' +
    "30, its operator's to mend), or (on AWS) Validate's tables or secrets refused it or did not answer in time " +
    '(Retry-After: 2), nothing started; send it again after Retry-After',
  '504':
    'TIMEOUT: the manager agent did not answer within its budget (error.conversation_id); or, without a ' +
    "conversation id, with Retry-After and Cache-Control, the gateway's own integration timeout: the conversation " +
    'goes on, and the same Idempotency-Key sent again gets 409 while it runs, then its answer',
};

/**
 * HEAD of a read route: answered as its GET (the same status and headers, locally and on AWS), without the body.
 */
function headOf(
  get: { operationId: string; parameters?: unknown[]; responses: Record<string, object> },
  operationId: string,
) {
  const responses = Object.fromEntries(
    Object.entries(get.responses).map(([status, { content: _, ...response }]: [string, { content?: unknown }]) => [
      status,
      response,
    ]),
  );
  return {
    operationId,
    description: `As GET (${get.operationId}): the same status and headers, without the body`,
    ...(get.parameters ? { parameters: get.parameters } : {}),
    responses,
  };
}

/** Response headers beyond Content-Type, by status, of POST /webhook. */
const WEBHOOK_HEADERS: Record<string, string[]> = {
  '403': ['Cache-Control'],
  '409': ['Retry-After'],
  '429': ['Retry-After', 'Cache-Control'],
  '503': ['Retry-After'],
  '504': ['Retry-After', 'Cache-Control'],
};

/** The errors of GET /conversations/{id} (docs/contract.md#get-conversationsid), each with Cache-Control. */
const STATUS_ERRORS: Record<string, string> = {
  '400': 'VALIDATION_ERROR: no well-formed source_system',
  '401': 'INVALID_SIGNATURE: the source signs, and the signature of the request target is missing, stale or wrong',
  '403': ERROR_STATUSES['403']!,
  '404': "NOT_FOUND: no asynchronous conversation of this source with that id (another source's, or expired: 7 days)",
  '429': ERROR_STATUSES['429']!,
  '500':
    'STATE_UNREADABLE (local only): the stored status of this conversation is damaged (not unknown); the console ' +
    'names its file',
  '503':
    "STORAGE_UNAVAILABLE: the status could not be read just now (on AWS its table or the sources' secrets failed " +
    'the read; locally its data folder); STARTING (local only): the gateway is still starting; ask again after ' +
    'Retry-After',
  '504': 'TIMEOUT (no conversation id): the status was not read in time; ask again',
};

function openApi(): Record<string, unknown> {
  const ref = (name: string) => ({ $ref: `#/components/schemas/${name}` });
  const json = (name: string) => ({ content: { 'application/json': { schema: ref(name) } } });
  const header = (description: string) => ({ schema: { type: 'string' }, description });
  const HEADERS: Record<string, object> = {
    'Retry-After': header('Seconds to wait before trying again (or, for a status, before reading it again)'),
    Location: header('The status URL (status_url)'),
    'Preference-Applied': header('respond-async'),
    'Cache-Control': header('no-store'),
  };
  const headers = (names: string[] = []) =>
    names.length === 0 ? {} : { headers: Object.fromEntries(names.map((name) => [name, HEADERS[name]])) };
  const signing = (what: string) => [
    { name: 'webhook-id', in: 'header', ...header(`Standard Webhooks message id (signed sources)${what}`) },
    {
      name: 'webhook-timestamp',
      in: 'header',
      ...header('Standard Webhooks timestamp, Unix seconds (signed sources)'),
    },
  ];
  const apiKey = {
    name: 'x-api-key',
    in: 'header',
    ...header("Required with per-source API keys (docs/security.md#api-keys): the source_system's own key"),
  };
  const statusGet = {
    operationId: 'conversationStatus',
    description:
      'The status of a conversation started with Prefer: respond-async; a source with a secret signs the ' +
      'request target (docs/security.md#reading-a-status)',
    parameters: [
      { name: 'conversationId', in: 'path', required: true, schema: { type: 'string' } },
      {
        name: 'source_system',
        in: 'query',
        required: true,
        ...header('The source that started it (only it may read the status)'),
      },
      ...signing(''),
      {
        name: 'webhook-signature',
        in: 'header',
        ...header('v1,<base64 HMAC-SHA256 of id.timestamp.GET /conversations/<id>> (signed sources)'),
      },
      apiKey,
    ],
    responses: {
      '200': {
        description: 'running (with Retry-After), completed (the 200 body) or failed (the error body)',
        ...headers(['Cache-Control', 'Retry-After']),
        ...json('ConversationStatus'),
      },
      ...Object.fromEntries(
        Object.entries(STATUS_ERRORS).map(([status, description]) => [
          status,
          {
            description,
            ...headers([...new Set(['Cache-Control', ...(WEBHOOK_HEADERS[status] ?? [])])]),
            ...json('Error'),
          },
        ]),
      ),
    },
  };
  const healthGet = {
    operationId: 'health',
    responses: { '200': { description: 'The gateway is up; no workflow is started', ...json('Health') } },
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'Webhook conversation gateway',
      version: '1.0',
      description:
        'Each POST /webhook becomes one conversation: validated, answered by the manager agent, classified, ' +
        'delivered to the outbound webhook of its type, and exported to S3 (docs/contract.md).',
    },
    servers: [
      {
        url: 'http://127.0.0.1:{port}',
        description: 'The local gateway (npm start)',
        variables: { port: { default: '3000', description: 'PORT' } },
      },
      {
        url: 'https://{restApiId}.execute-api.{region}.{urlSuffix}/{stage}',
        description: 'A deployed stack: its ApiUrl output (docs/deploy.md); with per-source API keys, send x-api-key',
        variables: {
          restApiId: { default: 'abcdef1234', description: "The stack's RestApiId output" },
          region: { default: 'us-east-1', description: 'The region the stack is deployed in' },
          urlSuffix: { default: 'amazonaws.com', enum: ['amazonaws.com', 'amazonaws.com.cn'] },
          stage: { default: 'prod', description: 'The context key stageName' },
        },
      },
    ],
    paths: {
      '/webhook': {
        post: {
          operationId: 'sendConversation',
          parameters: [
            {
              name: 'Idempotency-Key',
              in: 'header',
              ...header(
                '1 to 255 visible ASCII characters (400 VALIDATION_ERROR otherwise); a retry with the same key within 24 h gets the first answer again (a signed request is keyed on its webhook-id instead)',
              ),
            },
            ...signing(': the same on every retry, and the key of a signed request'),
            {
              name: 'webhook-signature',
              in: 'header',
              ...header('v1,<base64 HMAC-SHA256> (signed sources; docs/security.md)'),
            },
            apiKey,
            {
              name: 'Prefer',
              in: 'header',
              ...header(
                'respond-async: answer 202 at once with a status URL instead of waiting for the agent (docs/contract.md#asynchronous-start-prefer-respond-async)',
              ),
            },
          ],
          requestBody: { required: true, ...json('WebhookRequest') },
          responses: {
            '200': {
              description: "The agent answered; the delivery is the gateway's job (tracking.delivery_status)",
              ...json('ConversationAnswer'),
            },
            '202': {
              description: 'Prefer: respond-async: accepted, running without the caller; read its status at status_url',
              ...headers(['Location', 'Preference-Applied', 'Retry-After']),
              ...json('Accepted'),
            },
            ...Object.fromEntries(
              Object.entries(ERROR_STATUSES).map(([status, description]) => [
                status,
                { description, ...headers(WEBHOOK_HEADERS[status]), ...json('Error') },
              ]),
            ),
          },
        },
      },
      '/conversations/{conversationId}': {
        get: statusGet,
        head: headOf(statusGet, 'conversationStatusHead'),
      },
      '/health': { get: healthGet, head: headOf(healthGet, 'healthHead') },
    },
    webhooks: {
      conversationCompleted: {
        post: {
          description:
            'What the gateway POSTs to the outbound webhook of each type, signed with Standard Webhooks when the ' +
            'type has a secret. 2xx acknowledges; 408, 429 and 5xx are retried; any other status is permanent.',
          parameters: [
            {
              name: 'webhook-id',
              in: 'header',
              required: true,
              ...header('The delivery_id: the same on every attempt'),
            },
            { name: 'webhook-timestamp', in: 'header', ...header('Unix seconds (signed types)') },
            { name: 'webhook-signature', in: 'header', ...header('v1,<base64 HMAC-SHA256> (signed types)') },
          ],
          requestBody: { required: true, ...json('Delivery') },
          responses: { '200': { description: 'Delivered' } },
        },
      },
    },
    components: {
      schemas: {
        WebhookRequest: componentSchema(WebhookRequestSchema, { description: REQUEST_DESCRIPTION }),
        ConversationAnswer: componentSchema(SuccessBodySchema),
        Accepted: componentSchema(AcceptedBodySchema),
        ConversationStatus: componentSchema(StatusBodySchema),
        Error: componentSchema(ErrorBodySchema),
        Health: componentSchema(HealthBodySchema),
        Delivery: componentSchema(DeliveryPayloadSchema),
      },
    },
  };
}

function componentSchema(schema: GenericSchema, extra: Record<string, unknown> = {}): Record<string, unknown> {
  const { $schema: _, ...rest } = jsonSchema(schema, extra);
  return rest;
}

/** Every generated file, by its path under the repository, as the text written. */
export function contractFiles(): Record<string, string> {
  const files: Record<string, unknown> = {
    'docs/openapi.json': openApi(),
    'docs/schemas/webhook-request.schema.json': jsonSchema(WebhookRequestSchema, {
      title: 'POST /webhook request',
      description: REQUEST_DESCRIPTION,
    }),
    'docs/schemas/delivery.schema.json': jsonSchema(DeliveryPayloadSchema),
  };
  for (const [file, schema] of Object.entries(EXPORT_SCHEMAS)) {
    const name = file.replace(/\.json$/, '.schema.json');
    files[`docs/schemas/${name}`] = jsonSchema(schema);
  }
  return Object.fromEntries(Object.entries(files).map(([p, doc]) => [p, `${JSON.stringify(doc, null, 2)}\n`]));
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  for (const [file, text] of Object.entries(contractFiles())) {
    await mkdir(path.dirname(path.join(ROOT, file)), { recursive: true });
    await writeFile(path.join(ROOT, file), text);
    process.stdout.write(`wrote ${file}\n`);
  }
}
