/**
 * prometheus-operator `PrometheusRule` (monitoring.coreos.com/v1) holding the kvroute alerts of
 * alert-rules.ts. The PrometheusRule CRD is not among the imported CRDs, so the object is a plain
 * cdk8s ApiObject; the schema tests validate it with the prometheus-operator model.
 */
import { ApiObject } from 'cdk8s';
import { Construct } from 'constructs';
import { type AlertRule, alertRules, type AlertRulesOptions } from './alert-rules.js';

/** API version and kind of the object. */
export const PrometheusRuleKind = { apiVersion: 'monitoring.coreos.com/v1', kind: 'PrometheusRule' } as const;

/** One rule of a PrometheusRule group, as the CRD spells it. */
export interface PrometheusRuleRuleSpec {
  readonly alert: string;
  readonly expr: string;
  readonly for: string;
  readonly labels: Record<string, string>;
  readonly annotations: Record<string, string>;
}

/** `spec` of a PrometheusRule. */
export interface PrometheusRuleSpec {
  readonly groups: { readonly name: string; readonly rules: PrometheusRuleRuleSpec[] }[];
}

/** Props of {@link KvroutePrometheusRule}. */
export interface KvroutePrometheusRuleProps extends AlertRulesOptions {
  /** Object name (`<name>-alerts` in the chart). */
  readonly name: string;
  /**
   * Object labels (Prometheus selects rules by these, like monitors).
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** The CRD form of one alert. */
export function ruleSpec(r: AlertRule): PrometheusRuleRuleSpec {
  return {
    alert: r.alert,
    expr: r.expr,
    for: r.for,
    labels: { severity: r.severity },
    annotations: { summary: r.summary, description: r.description, runbook_url: r.runbookUrl },
  };
}

/** The PrometheusRule `spec` for the alerts: one group named after the object. */
export function prometheusRuleSpec(name: string, rules: readonly AlertRule[]): PrometheusRuleSpec {
  return { groups: [{ name, rules: rules.map(ruleSpec) }] };
}

/** PrometheusRule with every kvroute alert. */
export class KvroutePrometheusRule extends Construct {
  readonly resource: ApiObject;
  /** The alerts it holds (expressions for tests that evaluate them). */
  readonly rules: readonly AlertRule[];
  constructor(scope: Construct, id: string, props: KvroutePrometheusRuleProps) {
    super(scope, id);
    this.rules = alertRules(props);
    this.resource = new ApiObject(this, 'Resource', {
      ...PrometheusRuleKind,
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: prometheusRuleSpec(props.name, this.rules),
    });
  }
}
