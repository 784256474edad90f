import { type Duration, RemovalPolicy, Validations } from 'aws-cdk-lib';
import {
  AccessLogFormat,
  AwsIntegration,
  EndpointType,
  type IntegrationResponse,
  LambdaIntegration,
  LogGroupLogDestination,
  MethodLoggingLevel,
  type MethodResponse,
  MockIntegration,
  Model,
  PassthroughBehavior,
  ResponseType,
  RestApi,
} from 'aws-cdk-lib/aws-apigateway';
import { Role, ServicePrincipal } from 'aws-cdk-lib/aws-iam';
import type { IFunction } from 'aws-cdk-lib/aws-lambda';
import { LogGroup, type RetentionDays } from 'aws-cdk-lib/aws-logs';
import type { IStateMachine } from 'aws-cdk-lib/aws-stepfunctions';
import { Construct } from 'constructs';
import {
  INTEGRATION_TIMEOUT_HEADERS,
  JSON_CONTENT_TYPE,
  NO_STORE,
  NO_STORE_GATEWAY_ERRORS,
  TIMED_OUT_STATUS,
} from '../../functions/domain/gateway-contract.ts';
import {
  executionResultResponseTemplate,
  GENERIC_GATEWAY_ERROR_TEMPLATE,
  gatewayErrorTemplate,
  healthResponseTemplate,
  INTEGRATION_TIMEOUT_TEMPLATE,
  RETRY_AFTER_SECONDS,
  startFailedResponseTemplate,
  startSyncExecutionRequestTemplate,
  WEBHOOK_STATUS_CODES,
} from '../api-templates.ts';
import { POWERTOOLS_SERVICE_NAME } from '../config.ts';
import { secretMaskingPolicy } from './secret-masking-policy.ts';

export interface WebhookApiProps {
  readonly stateMachine: IStateMachine;
  /** The accept workflow: POST /webhook with `Prefer: respond-async` starts it instead (accept-workflow.ts). */
  readonly acceptStateMachine: IStateMachine;
  /** GET /conversations/{conversation_id} (Lambda proxy): the status of an asynchronous conversation. */
  readonly statusFunction: IFunction;
  readonly stageName: string;
  readonly logRetention: RetentionDays;
  readonly throttlingRateLimit: number;
  readonly throttlingBurstLimit: number;
  /** The REST API's name (the console lists APIs by name). */
  readonly restApiName: string;
  /**
   * Access log and ERROR execution log of the stage. Both need the account-wide CloudWatch role of API Gateway's
   * account settings: without it (a new account) a stage with logging fails to deploy.
   */
  readonly logging: boolean;
  /** Create that account-wide role (AWS::ApiGateway::Account: it replaces any role the account had). */
  readonly createCloudWatchRole: boolean;
  /** How long POST /webhook waits for the execution (TimeoutInMillis of the integration). */
  readonly integrationTimeout: Duration;
  /**
   * POST /webhook and GET /conversations/{id} require an API key (x-api-key): set when per-source usage plans exist
   * (source-rate-limits.ts).
   */
  readonly apiKeyRequired: boolean;
}

const JSON_TYPE = 'application/json';

/**
 * API Gateway says `Content-Type: application/json` (the mapping template's key) unless a header mapping says
 * otherwise: every answer it gives itself says JSON_CONTENT_TYPE, as the local gateway and the status route do. A
 * static header value is quoted (the integration response's and the gateway response's parameter syntax).
 */
const CONTENT_TYPE_VALUE = `'${JSON_CONTENT_TYPE}'`;
const CONTENT_TYPE_MAPPING = { 'method.response.header.Content-Type': CONTENT_TYPE_VALUE } as const;

/** One access-log line per request (JSON). `requestId` is also the name of the execution it started. */
const ACCESS_LOG_FIELDS = {
  requestId: '$context.requestId',
  extendedRequestId: '$context.extendedRequestId',
  ip: '$context.identity.sourceIp',
  userAgent: '$context.identity.userAgent',
  requestTime: '$context.requestTime',
  httpMethod: '$context.httpMethod',
  resourcePath: '$context.resourcePath',
  status: '$context.status',
  responseLength: '$context.responseLength',
  responseLatency: '$context.responseLatency',
  integrationStatus: '$context.integration.status',
  integrationLatency: '$context.integration.latency',
  integrationError: '$context.integration.error',
  errorType: '$context.error.responseType',
  errorMessage: '$context.error.message',
  xrayTraceId: '$context.xrayTraceId',
};

/**
 * The public REST API. `POST /webhook` starts the conversation workflow synchronously through a direct
 * `states:StartSyncExecution` integration (no Lambda in between) and maps the finished execution to the HTTP
 * contract; with `Prefer: respond-async` the same integration and request mapping start the accept workflow, whose
 * output becomes the 202. `GET /conversations/{id}` is the status Lambda's (proxy); `GET /health` is answered by
 * API Gateway alone. Only `application/json` bodies are accepted (415
 * otherwise), oversized ones get 413, unknown routes 404 and other methods 405, all with the contract's error body;
 * throttled requests get 429 with a Retry-After. With per-source usage plans, POST /webhook requires an API key.
 */
export class WebhookApi extends Construct {
  readonly api: RestApi;
  /** The access log (requestId = execution name); only with logging. */
  readonly accessLogGroup?: LogGroup;
  readonly startExecutionRole: Role;

  constructor(scope: Construct, id: string, props: WebhookApiProps) {
    super(scope, id);
    this.accessLogGroup = props.logging
      ? new LogGroup(this, 'AccessLogs', { retention: props.logRetention, dataProtectionPolicy: secretMaskingPolicy() })
      : undefined;
    this.api = new RestApi(this, 'RestApi', {
      restApiName: props.restApiName,
      description: 'Webhook conversation gateway: POST /webhook runs one conversation workflow; GET /health',
      endpointConfiguration: { types: [EndpointType.REGIONAL] },
      cloudWatchRole: props.createCloudWatchRole,
      cloudWatchRoleRemovalPolicy: props.createCloudWatchRole ? RemovalPolicy.RETAIN : undefined,
      deployOptions: {
        stageName: props.stageName,
        ...(this.accessLogGroup
          ? {
              accessLogDestination: new LogGroupLogDestination(this.accessLogGroup),
              accessLogFormat: AccessLogFormat.custom(JSON.stringify(ACCESS_LOG_FIELDS)),
              loggingLevel: MethodLoggingLevel.ERROR,
            }
          : { loggingLevel: MethodLoggingLevel.OFF }),
        dataTraceEnabled: false,
        metricsEnabled: true,
        tracingEnabled: true,
        throttlingRateLimit: props.throttlingRateLimit,
        throttlingBurstLimit: props.throttlingBurstLimit,
      },
    });

    // The stack names its own outputs (ApiUrl, WebhookUrl, HealthUrl): drop RestApi's generated one.
    this.api.node.tryRemoveChild('Endpoint');

    this.startExecutionRole = new Role(this, 'StartExecutionRole', {
      assumedBy: new ServicePrincipal('apigateway.amazonaws.com'),
      description:
        'Lets POST /webhook run the conversation workflow, or the accept workflow for Prefer: respond-async (StartSyncExecution only)',
    });
    props.stateMachine.grantStartSyncExecution(this.startExecutionRole);
    props.acceptStateMachine.grantStartSyncExecution(this.startExecutionRole);

    const webhook = this.api.root.addResource('webhook');
    webhook.addMethod('POST', this.startSyncExecution(props, props.integrationTimeout), {
      methodResponses: WEBHOOK_STATUS_CODES.map((status) =>
        jsonMethodResponse(
          status,
          status === 202 ? ACCEPTED_HEADERS : status === 429 || status === 409 || status === 503 ? ['Retry-After'] : [],
        ),
      ),
      apiKeyRequired: props.apiKeyRequired,
    });
    webhook.addMethod('ANY', methodNotAllowed('POST'), { methodResponses: [jsonMethodResponse(405, ['Allow'])] });

    // GET /conversations/{conversation_id}?source_system=…: the status Lambda answers the whole HTTP response. HEAD
    // is answered as GET is (RFC 9110 §9.3.2), as the local gateway does: the same function, its body not sent.
    const conversation = this.api.root.addResource('conversations').addResource('{conversation_id}');
    const status = new LambdaIntegration(props.statusFunction, { proxy: true });
    for (const method of READ_METHODS) conversation.addMethod(method, status, { apiKeyRequired: props.apiKeyRequired });
    // Its 405 is Cache-Control: no-store as every answer of the route (docs/contract.md#get-conversationsid), locally too.
    conversation.addMethod('ANY', methodNotAllowed(READ_METHODS.join(', '), { uncached: true }), {
      methodResponses: [jsonMethodResponse(405, ['Allow', 'Cache-Control'])],
    });

    const health = this.api.root.addResource('health');
    const healthy = new MockIntegration({
      passthroughBehavior: PassthroughBehavior.NEVER,
      requestTemplates: { [JSON_TYPE]: '{"statusCode": 200}' },
      integrationResponses: [
        {
          statusCode: '200',
          responseTemplates: { [JSON_TYPE]: healthResponseTemplate(POWERTOOLS_SERVICE_NAME) },
          responseParameters: CONTENT_TYPE_MAPPING,
        },
      ],
    });
    for (const method of READ_METHODS)
      health.addMethod(method, healthy, { methodResponses: [jsonMethodResponse(200)] });
    health.addMethod('ANY', methodNotAllowed(READ_METHODS.join(', ')), {
      methodResponses: [jsonMethodResponse(405, ['Allow'])],
    });

    this.addGatewayResponses();
    this.acknowledgeFindings(props.logging);
  }

  /** The webhook URL (`https://…/<stage>/webhook`). */
  get webhookUrl(): string {
    return this.api.urlForPath('/webhook');
  }

  get healthUrl(): string {
    return this.api.urlForPath('/health');
  }

  private startSyncExecution(
    machines: Pick<WebhookApiProps, 'stateMachine' | 'acceptStateMachine'>,
    integrationTimeout: Duration,
  ): AwsIntegration {
    const responses: IntegrationResponse[] = [
      // Every execution that ran (SUCCEEDED, FAILED, TIMED_OUT, ABORTED): Step Functions answers 200.
      // The template may override the status (responseOverride.status): the header mapping stays, and every
      // status's method response declares Content-Type (jsonMethodResponse).
      {
        statusCode: '200',
        responseTemplates: { [JSON_TYPE]: executionResultResponseTemplate() },
        responseParameters: CONTENT_TYPE_MAPPING,
      },
      // Step Functions refused to start one.
      {
        statusCode: '500',
        selectionPattern: '[45]\\d{2}',
        responseTemplates: { [JSON_TYPE]: startFailedResponseTemplate() },
        responseParameters: CONTENT_TYPE_MAPPING,
      },
    ];
    return new AwsIntegration({
      service: 'states',
      action: 'StartSyncExecution',
      integrationHttpMethod: 'POST',
      options: {
        credentialsRole: this.startExecutionRole,
        timeout: integrationTimeout,
        // Only application/json has a template: any other Content-Type is refused with 415. A request without one
        // is read as application/json (API Gateway's default), and the local gateway does the same.
        passthroughBehavior: PassthroughBehavior.NEVER,
        requestTemplates: {
          [JSON_TYPE]: startSyncExecutionRequestTemplate(
            machines.stateMachine.stateMachineArn,
            machines.acceptStateMachine.stateMachineArn,
          ),
        },
        integrationResponses: responses,
      },
    });
  }

  /** cdk-nag AwsSolutions findings this API accepts, each with its reason. */
  private acknowledgeFindings(logging: boolean): void {
    if (!logging) {
      Validations.of(this.api).acknowledge(
        {
          id: 'AwsSolutions-APIG1',
          reason:
            'Access logging needs the account-wide API Gateway CloudWatch role, which a new account lacks (the deploy would fail): on with context apiLogging (or createApiGatewayCloudWatchRole). Every request is also an execution in the Express execution log.',
        },
        {
          id: 'AwsSolutions-APIG6',
          reason: 'Execution logging needs the same account-wide role as access logging: on with context apiLogging.',
        },
      );
    }
    Validations.of(this.api).acknowledge(
      {
        id: 'AwsSolutions-APIG2',
        reason:
          'The request is validated by the Validate state against the contract schema so that errors carry the contract body (VALIDATION_ERROR with per-field details, INVALID_JSON); API Gateway refuses other media types (415) and oversized bodies (413) itself.',
      },
      {
        id: 'AwsSolutions-APIG3',
        reason:
          'Stage throttling bounds abuse; a WAF web ACL is account-specific (managed rule sets, allow-lists of the source systems) and is associated by the operator, see docs/deploy.md.',
      },
      {
        id: 'AwsSolutions-APIG4',
        reason:
          'A public webhook for external source systems, which cannot sign with SigV4 or hold Cognito tokens: Validate verifies their Standard Webhooks signatures with per-source secrets (required with requireSignedWebhooks), and per-source API keys with usage plans apply when sourceRateLimits is set. GET /health is public by design.',
      },
      {
        id: 'AwsSolutions-COG4',
        reason:
          'No Cognito users call this API: the callers are machine-to-machine webhook senders (see AwsSolutions-APIG4).',
      },
    );
    const cloudWatchRole = this.api.node.tryFindChild('CloudWatchRole');
    if (cloudWatchRole) {
      Validations.of(cloudWatchRole).acknowledge({
        id: 'AwsSolutions-IAM4[Policy::arn:<AWS::Partition>:iam::aws:policy/service-role/AmazonAPIGatewayPushToCloudWatchLogs]',
        reason:
          'The account-wide role API Gateway uses to write its logs; AmazonAPIGatewayPushToCloudWatchLogs is the policy AWS documents for it and it is limited to CloudWatch Logs.',
      });
    }
  }

  private addGatewayResponses(): void {
    const contractError = (
      id: string,
      type: ResponseType,
      code: Parameters<typeof gatewayErrorTemplate>[0],
      retryAfter?: number,
    ) => {
      const { statusCode, template } = gatewayErrorTemplate(code);
      const headers = {
        ...(retryAfter === undefined ? {} : { 'Retry-After': `'${retryAfter}'` }),
        ...(NO_STORE_GATEWAY_ERRORS.includes(code) ? { 'Cache-Control': `'${NO_STORE['cache-control']}'` } : {}),
      };
      this.api.addGatewayResponse(id, {
        type,
        statusCode: String(statusCode),
        templates: { [JSON_TYPE]: template },
        responseHeaders: { ...GATEWAY_RESPONSE_HEADERS, ...headers },
      });
    };
    contractError('UnsupportedMediaType', ResponseType.UNSUPPORTED_MEDIA_TYPE, 'UNSUPPORTED_MEDIA_TYPE');
    contractError('RequestTooLarge', ResponseType.REQUEST_TOO_LARGE, 'PAYLOAD_TOO_LARGE');
    // A REST API answers an unknown route with 403 "Missing Authentication Token": say 404.
    contractError('UnknownRoute', ResponseType.MISSING_AUTHENTICATION_TOKEN, 'NOT_FOUND');
    // With per-source API keys: a missing or unknown x-api-key, in the contract's words (as the local gateway says).
    contractError('InvalidApiKey', ResponseType.INVALID_API_KEY, 'INVALID_API_KEY');
    contractError('Throttled', ResponseType.THROTTLED, 'RATE_LIMITED', RETRY_AFTER_SECONDS.throttled);
    // A source over its usage plan's daily quota: the same contract body.
    contractError('QuotaExceeded', ResponseType.QUOTA_EXCEEDED, 'RATE_LIMITED', RETRY_AFTER_SECONDS.quotaExceeded);
    // The REST API gives up after its integration timeout: on POST /webhook the execution goes on and still exports
    // its record; on GET /conversations/{id} the status may be asked again. One response for both: its message names
    // the route (INTEGRATION_TIMEOUT_TEMPLATE).
    this.api.addGatewayResponse('IntegrationTimeout', {
      type: ResponseType.INTEGRATION_TIMEOUT,
      statusCode: String(TIMED_OUT_STATUS),
      templates: { [JSON_TYPE]: INTEGRATION_TIMEOUT_TEMPLATE },
      responseHeaders: {
        ...UNCACHED_GATEWAY_RESPONSE_HEADERS,
        'Retry-After': `'${INTEGRATION_TIMEOUT_HEADERS['retry-after']}'`,
      },
    });
    // Every other response API Gateway gives itself (missing permissions of its role, a WAF block, an integration
    // failure…) falls to one of these two. These three, and the timeout above, may answer GET /conversations/{id}
    // too (the status Lambda throttled, failed or slow), whose every answer is Cache-Control: no-store
    // (docs/contract.md#get-conversationsid).
    this.api.addGatewayResponse('Default4xx', {
      type: ResponseType.DEFAULT_4XX,
      templates: { [JSON_TYPE]: GENERIC_GATEWAY_ERROR_TEMPLATE },
      responseHeaders: UNCACHED_GATEWAY_RESPONSE_HEADERS,
    });
    this.api.addGatewayResponse('Default5xx', {
      type: ResponseType.DEFAULT_5XX,
      templates: { [JSON_TYPE]: GENERIC_GATEWAY_ERROR_TEMPLATE },
      responseHeaders: UNCACHED_GATEWAY_RESPONSE_HEADERS,
    });
  }
}

/** The methods of the read routes (the status, /health): a GET route answers HEAD too, locally (local/server/router.ts). */
const READ_METHODS = ['GET', 'HEAD'] as const;

/** The headers of the 202 of an asynchronous start (set by the response template: acceptedResult). */
const ACCEPTED_HEADERS = ['Location', 'Preference-Applied', 'Retry-After'];

/** Headers of every gateway response (static values, quoted as CONTENT_TYPE_VALUE is). */
const GATEWAY_RESPONSE_HEADERS = { 'Content-Type': CONTENT_TYPE_VALUE } as const;
/** …and of those that may answer GET /conversations/{id}, whatever went wrong. */
const UNCACHED_GATEWAY_RESPONSE_HEADERS = {
  ...GATEWAY_RESPONSE_HEADERS,
  'Cache-Control': `'${NO_STORE['cache-control']}'`,
} as const;

/** A method response with Content-Type (CONTENT_TYPE_MAPPING) and the headers its templates set. */
function jsonMethodResponse(status: number, headers: string[] = []): MethodResponse {
  return {
    statusCode: String(status),
    responseModels: { [JSON_TYPE]: Model.EMPTY_MODEL },
    responseParameters: Object.fromEntries(
      ['Content-Type', ...headers].map((h) => [`method.response.header.${h}`, false]),
    ),
  };
}

/** Any other method on a known route: 405 with the contract's body and `Allow` (RFC 9110), without the workflow. */
function methodNotAllowed(allow: string, { uncached = false } = {}): MockIntegration {
  const { statusCode, template } = gatewayErrorTemplate('METHOD_NOT_ALLOWED');
  return new MockIntegration({
    passthroughBehavior: PassthroughBehavior.WHEN_NO_TEMPLATES,
    requestTemplates: { [JSON_TYPE]: '{"statusCode": 200}' },
    integrationResponses: [
      {
        statusCode: String(statusCode),
        responseTemplates: { [JSON_TYPE]: template },
        responseParameters: {
          ...CONTENT_TYPE_MAPPING,
          'method.response.header.Allow': `'${allow}'`,
          ...(uncached ? { 'method.response.header.Cache-Control': `'${NO_STORE['cache-control']}'` } : {}),
        },
      },
    ],
  });
}
