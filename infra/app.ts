import { App } from 'aws-cdk-lib';
import { addAwsSolutionsChecks, addTemplateChecks } from './checks.ts';
import { ConfigError, checkContextKeys, resolveConfig } from './config.ts';
import { WebhookGatewayStack } from './webhook-gateway-stack.ts';

/**
 * `npx cdk synth` / `npx cdk deploy` (cdk.json: "app": "npx tsx infra/app.ts"). Configuration comes from CDK
 * context (cdk.json or `-c key=value`); docs/deploy.md lists the keys and defaults. The stack is
 * environment-agnostic: its ARNs name the account and region with CloudFormation's pseudo parameters, so the
 * same template deploys to whichever account and region the credentials choose.
 * Every synth runs cdk-nag's AwsSolutions checks (an unacknowledged finding fails it) and the template checks
 * (AWS's resource model, naming limits, the state machine definitions as deployed).
 * A bad setting (an invalid value, an unknown key) stops the synth with one line naming the key, not a stack trace.
 */
const app = new App();
try {
  checkContextKeys(app.node.getAllContext());
  const { stackName } = resolveConfig(app.node);
  new WebhookGatewayStack(app, stackName);
} catch (error) {
  if (!(error instanceof ConfigError)) throw error;
  console.error(`Invalid configuration: ${error.message}`);
  process.exit(1);
}
addAwsSolutionsChecks(app);
addTemplateChecks(app);
app.synth();
