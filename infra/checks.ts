import { type App, Validations } from 'aws-cdk-lib';
import { AwsSolutionsChecks } from 'cdk-nag';

/**
 * cdk-nag's AwsSolutions pack on the whole app: any finding not acknowledged (with a reason, next to the resource
 * it concerns) fails the synth. Acknowledged rules are also written into the template's Metadata (cdk_nag).
 */
export function addAwsSolutionsChecks(app: App): AwsSolutionsChecks {
  const checks = new AwsSolutionsChecks(app, { verbose: true, writeSuppressionsToCloudFormation: true });
  Validations.of(app).addPlugins(checks);
  return checks;
}
