import { type App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';
import { TemplateChecks } from './template-checks/plugin.ts';

/**
 * cdk-nag's AwsSolutions pack on the whole app: any finding not acknowledged (with a reason, next to the resource
 * it concerns) fails the synth. Acknowledged rules are also written into the template's Metadata (cdk_nag).
 */
export function addAwsSolutionsChecks(app: App): AwsSolutionsChecks {
  const checks = new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true });
  Validations.of(app).addPlugins(checks);
  return checks;
}

/**
 * The template checks of infra/template-checks/ on the whole app: any finding (a property AWS's resource model
 * does not know or types differently, a name over an AWS limit, a state machine definition that does not validate
 * once its placeholders are substituted) fails the synth.
 */
export function addTemplateChecks(app: App): TemplateChecks {
  const checks = new TemplateChecks();
  Validations.of(app).addPlugins(checks);
  return checks;
}
