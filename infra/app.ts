import { App } from 'aws-cdk-lib';
import { addAwsSolutionsChecks } from './checks.ts';
import { resolveConfig } from './config.ts';
import { WebhookGatewayStack } from './webhook-gateway-stack.ts';

/**
 * `npx cdk synth` / `npx cdk deploy` (cdk.json: "app": "npx tsx infra/app.ts"). Configuration comes from CDK
 * context (cdk.json or `-c key=value`); docs/deploy.md lists the keys and defaults. The stack is
 * environment-agnostic unless CDK_DEFAULT_ACCOUNT/REGION are known (they are during `cdk deploy`).
 * cdk-nag's AwsSolutions checks run on every synth: an unacknowledged finding fails it.
 */
const app = new App();
const { stackName } = resolveConfig(app.node);
new WebhookGatewayStack(app, stackName, {
  env: { account: process.env.CDK_DEFAULT_ACCOUNT, region: process.env.CDK_DEFAULT_REGION },
});
addAwsSolutionsChecks(app);
app.synth();
