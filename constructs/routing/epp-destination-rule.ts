/** Istio DestinationRule for the EPP host: plaintext HTTP/2 (the EPP runs without a sidecar and TLS off). */
import { Construct } from 'constructs';
import { DestinationRule, DestinationRuleSpecTrafficPolicyTlsMode } from '../../imports/destinationrule-networking.istio.io.js';

/** Props of {@link EppDestinationRule}. */
export interface EppDestinationRuleProps {
  readonly name: string;
  /** EPP Service host (FQDN). */
  readonly host: string;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** Tells gateways to talk plaintext to the EPP (the seed's epp-destinationrule.yaml, corrected host). */
export class EppDestinationRule extends Construct {
  readonly resource: DestinationRule;
  constructor(scope: Construct, id: string, props: EppDestinationRuleProps) {
    super(scope, id);
    this.resource = new DestinationRule(this, 'Resource', {
      metadata: { name: props.name, labels: { ...(props.labels ?? {}) } },
      spec: { host: props.host, trafficPolicy: { tls: { mode: DestinationRuleSpecTrafficPolicyTlsMode.DISABLE } } },
    });
  }
}
