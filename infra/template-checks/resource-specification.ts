import type { Property, PropertyType, Resource, SpecDatabase, TypeDefinition } from '@aws-cdk/service-spec-types';

/**
 * Every resource of a synthesized template checked against the CloudFormation resource model that ships with
 * `@aws-cdk/aws-service-spec` (the registry schemas CDK itself is generated from): the type exists, every property
 * is known, every required property is there, and every value has the type the model gives it, down through
 * nested property types, arrays and maps. A value CloudFormation computes at deploy time (Ref, Fn::GetAtt, Fn::Join,
 * …) is accepted wherever a scalar or a list may stand, since its type is only known then.
 */
export interface SpecFinding {
  logicalId: string;
  resourceType: string;
  /** Where in the resource, e.g. `Properties.LoggingConfiguration.Level`. */
  path: string;
  message: string;
}

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

/** Keys a resource may carry beside Type and Properties (CloudFormation resource attributes). */
const RESOURCE_ATTRIBUTES = new Set([
  'Type',
  'Properties',
  'DependsOn',
  'Metadata',
  'Condition',
  'DeletionPolicy',
  'UpdateReplacePolicy',
  'CreationPolicy',
  'UpdatePolicy',
]);

const INTRINSICS = new Set([
  'Ref',
  'Fn::GetAtt',
  'Fn::Join',
  'Fn::Sub',
  'Fn::If',
  'Fn::Select',
  'Fn::Split',
  'Fn::ImportValue',
  'Fn::GetAZs',
  'Fn::FindInMap',
  'Fn::Base64',
  'Fn::Cidr',
  'Fn::Length',
  'Fn::ToJsonString',
]);

function isIntrinsic(value: Json): boolean {
  if (!value || typeof value !== 'object' || Array.isArray(value)) return false;
  const keys = Object.keys(value);
  return keys.length === 1 && INTRINSICS.has(keys[0] as string);
}

/** `{ "Ref": "AWS::NoValue" }`: the property is left out at deploy time. */
function isNoValue(value: Json | undefined): boolean {
  return (
    !!value && typeof value === 'object' && !Array.isArray(value) && (value as { Ref?: Json }).Ref === 'AWS::NoValue'
  );
}

function describe(value: Json): string {
  const text = JSON.stringify(value);
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}

/**
 * The resource the CDK CLI adds to every template it synthesizes (version reporting, on unless `--no-version-reporting`):
 * CloudFormation accepts it, but it is not in the resource model. Its one property is `Analytics`, a string.
 */
export const CDK_METADATA_TYPE = 'AWS::CDK::Metadata';

export class ResourceSpecification {
  private readonly byType = new Map<string, Resource>();

  constructor(private readonly db: SpecDatabase) {}

  resource(type: string): Resource | undefined {
    if (!this.byType.has(type)) {
      const [found] = this.db.lookup('resource', 'cloudFormationType', 'equals', type);
      if (found) this.byType.set(type, found);
    }
    return this.byType.get(type);
  }

  /** Every finding for every resource of `template` (a synthesized CloudFormation template as JSON). */
  check(template: { Resources?: Record<string, Json> }): SpecFinding[] {
    const findings: SpecFinding[] = [];
    for (const [logicalId, raw] of Object.entries(template.Resources ?? {})) {
      const resource = (raw ?? {}) as Record<string, Json>;
      const resourceType = String(resource.Type ?? '');
      const report = (path: string, message: string) => findings.push({ logicalId, resourceType, path, message });
      for (const key of Object.keys(resource)) {
        if (!RESOURCE_ATTRIBUTES.has(key)) report(key, `unknown resource attribute ${key}`);
      }
      if (resourceType.startsWith('Custom::')) {
        // A custom resource's properties are the provider's own; CloudFormation only needs the ServiceToken.
        const props = (resource.Properties ?? {}) as Record<string, Json>;
        if (props.ServiceToken === undefined)
          report('Properties.ServiceToken', 'required property ServiceToken is missing');
        continue;
      }
      if (resourceType === CDK_METADATA_TYPE) {
        for (const [name, value] of Object.entries((resource.Properties ?? {}) as Record<string, Json>))
          if (name !== 'Analytics' || typeof value !== 'string')
            report(`Properties.${name}`, `${CDK_METADATA_TYPE} has only Analytics, a string`);
        continue;
      }
      const spec = this.resource(resourceType);
      if (!spec) {
        report('Type', `unknown resource type ${resourceType || '(none)'}`);
        continue;
      }
      const properties = resource.Properties ?? {};
      if (typeof properties !== 'object' || Array.isArray(properties) || properties === null) {
        report('Properties', 'Properties must be an object');
        continue;
      }
      this.checkObject(spec.properties, properties, 'Properties', report);
    }
    return findings;
  }

  private checkObject(
    specProps: Record<string, Property>,
    value: { [key: string]: Json },
    path: string,
    report: (path: string, message: string) => void,
  ): void {
    for (const [name, property] of Object.entries(specProps)) {
      if (property.required && (value[name] === undefined || isNoValue(value[name]))) {
        report(`${path}.${name}`, `required property ${name} is missing`);
      }
    }
    for (const [name, propValue] of Object.entries(value)) {
      const property = specProps[name];
      if (!property) {
        report(`${path}.${name}`, `unknown property ${name} (known: ${Object.keys(specProps).sort().join(', ')})`);
        continue;
      }
      if (isNoValue(propValue)) continue;
      // A property whose type changed keeps its earlier types in the model: any of them is accepted.
      const types = [property.type, ...(property.previousTypes ?? [])];
      const errors = types.map((type) => this.typeErrors(type, propValue, `${path}.${name}`));
      if (errors.every((list) => list.length > 0)) {
        for (const error of errors[0] ?? []) report(error.path, error.message);
      }
    }
  }

  /** Why `value` is not of `type` (empty when it is). */
  private typeErrors(type: PropertyType, value: Json, path: string): { path: string; message: string }[] {
    const wrong = (expected: string) => [{ path, message: `expected ${expected}, got ${describe(value)}` }];
    if (isIntrinsic(value)) return [];
    switch (type.type) {
      case 'string': {
        if (typeof value !== 'string') return wrong('a string');
        if (type.allowedValues && !type.allowedValues.includes(value))
          return wrong(`one of ${type.allowedValues.join(', ')}`);
        return [];
      }
      case 'integer': {
        const n = typeof value === 'string' && /^-?\d+$/.test(value) ? Number(value) : value;
        if (typeof n !== 'number' || !Number.isInteger(n)) return wrong('an integer');
        if (type.allowedValues && !type.allowedValues.includes(n))
          return wrong(`one of ${type.allowedValues.join(', ')}`);
        return [];
      }
      case 'number': {
        const ok =
          typeof value === 'number' ||
          (typeof value === 'string' && value.trim() !== '' && Number.isFinite(Number(value)));
        return ok ? [] : wrong('a number');
      }
      case 'boolean':
        return typeof value === 'boolean' || value === 'true' || value === 'false' ? [] : wrong('a boolean');
      case 'date-time':
        return typeof value === 'string' && !Number.isNaN(Date.parse(value)) ? [] : wrong('a date-time');
      case 'json':
        return value !== null && (typeof value === 'object' || typeof value === 'string') ? [] : wrong('a JSON object');
      case 'null':
        return value === null ? [] : wrong('null');
      case 'tag': {
        if (!value || typeof value !== 'object' || Array.isArray(value)) return wrong('a tag {Key, Value}');
        const keys = Object.keys(value).sort().join(',');
        return keys === 'Key,Value' ? [] : wrong('a tag {Key, Value}');
      }
      case 'array': {
        if (!Array.isArray(value)) return wrong('a list');
        return value.flatMap((element, i) => this.typeErrors(type.element, element, `${path}[${i}]`));
      }
      case 'map': {
        if (!value || typeof value !== 'object' || Array.isArray(value)) return wrong('a map');
        return Object.entries(value).flatMap(([key, element]) =>
          this.typeErrors(type.element, element, `${path}.${key}`),
        );
      }
      case 'union': {
        const each = type.types.map((member) => this.typeErrors(member, value, path));
        return each.some((list) => list.length === 0)
          ? []
          : wrong(`one of the types of the union (${each.map((l) => l[0]?.message).join('; ')})`);
      }
      case 'ref': {
        const definition = this.db.get('typeDefinition', type.reference.$ref) as TypeDefinition;
        if (!value || typeof value !== 'object' || Array.isArray(value))
          return wrong(`an object of type ${definition.name}`);
        const errors: { path: string; message: string }[] = [];
        this.checkObject(definition.properties, value, path, (p, message) => errors.push({ path: p, message }));
        return errors;
      }
      default:
        return [];
    }
  }
}
