import { Testing } from 'cdk8s';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { EppContainerCommand } from '../../constructs/epp/endpoint-picker.js';
import { VerifyJob } from '../../constructs/gitops/verify-job.js';
import { findObject, type K8sObject, objectsOfKind, synthObjects } from '../support/synth.js';

interface JobSpec {
  backoffLimit: number;
  activeDeadlineSeconds: number;
  template: { spec: { restartPolicy: string; imagePullSecrets?: { name: string }[]; containers: { image: string; command: string[]; args: string[]; securityContext: Record<string, unknown> }[] } };
}

describe('verify PostSync Job', () => {
  it('is off by default', () => {
    expect(objectsOfKind(synthObjects(parseDeploymentConfig({})), 'Job')).toHaveLength(0);
  });

  it('verify.enabled: a PostSync hook Job running kvroute-epp verify through the gateway against Prometheus', () => {
    const c = parseDeploymentConfig({ verify: { enabled: true }, images: { imagePullSecrets: ['regcred'] } });
    const job = findObject(synthObjects(c), 'Job', 'kvroute-verify');
    expect(job.metadata.namespace ?? 'llm-d').toBe('llm-d');
    expect(job.metadata.annotations).toEqual({ 'argocd.argoproj.io/hook': 'PostSync', 'argocd.argoproj.io/hook-delete-policy': 'BeforeHookCreation' });
    const spec = job.spec as JobSpec;
    expect(spec.backoffLimit).toBe(0);
    expect(spec.activeDeadlineSeconds).toBe(900);
    expect(spec.template.spec.restartPolicy).toBe('Never');
    expect(spec.template.spec.imagePullSecrets).toEqual([{ name: 'regcred' }]);
    const ctr = spec.template.spec.containers[0]!;
    // the EPP image and its command: the same CLI binary as the EPP Deployment
    const epp = findObject(synthObjects(c), 'Deployment', 'kvroute-epp');
    const eppImage = (epp.spec as { template: { spec: { containers: { image: string }[] } } }).template.spec.containers[0]!.image;
    expect(ctr.image).toBe(eppImage);
    expect(ctr.command).toEqual([...EppContainerCommand]);
    // defaults: Istio's Service of the emitted Gateway, the prometheus-operator's Service
    expect(ctr.args).toEqual([
      'verify',
      '--gateway', 'http://kvroute-gateway-istio.llm-d.svc:80',
      '--model', c.model.name,
      '--prometheus', 'http://prometheus-operated.monitoring.svc:9090',
      '--sessions', '24',
      '--turns', '3',
    ]);
    expect(ctr.securityContext).toMatchObject({ runAsNonRoot: true, allowPrivilegeEscalation: false });
  });

  it('takes the URLs and the workload size from the config', () => {
    const c = parseDeploymentConfig({ verify: { enabled: true, gatewayUrl: 'https://gw.example.com', prometheusUrl: 'http://prom.obs.svc:9090', sessions: 8, turns: 2, activeDeadlineSeconds: 300 } });
    const spec = findObject(synthObjects(c), 'Job', 'kvroute-verify').spec as JobSpec;
    expect(spec.activeDeadlineSeconds).toBe(300);
    expect(spec.template.spec.containers[0]!.args).toEqual(['verify', '--gateway', 'https://gw.example.com', '--model', c.model.name, '--prometheus', 'http://prom.obs.svc:9090', '--sessions', '8', '--turns', '2']);
  });

  it('construct defaults, and errors naming the field and the fix', () => {
    const chart = Testing.chart();
    new VerifyJob(chart, 'v', { name: 'v', image: 'i', gatewayUrl: 'http://g', prometheusUrl: 'http://p', model: 'm' });
    const job = Testing.synth(chart)[0] as K8sObject;
    const spec = job.spec as JobSpec;
    expect(spec.activeDeadlineSeconds).toBe(900);
    expect(spec.template.spec.imagePullSecrets).toBeUndefined();
    expect(spec.template.spec.containers[0]!.args).toEqual(['verify', '--gateway', 'http://g', '--model', 'm', '--prometheus', 'http://p', '--sessions', '24', '--turns', '3']);
    expect(job.metadata.labels).toEqual({ 'app.kubernetes.io/component': 'verify' });
    const make = (p: Partial<ConstructorParameters<typeof VerifyJob>[2]>): VerifyJob =>
      new VerifyJob(Testing.chart(), 'x', { name: 'x', image: 'i', gatewayUrl: 'http://g', prometheusUrl: 'http://p', model: 'm', ...p });
    expect(() => make({ gatewayUrl: 'g:80' })).toThrow(/VerifyJob x: gatewayUrl "g:80" is not an http\(s\) URL/);
    expect(() => make({ prometheusUrl: '' })).toThrow(/prometheusUrl "" is not an http\(s\) URL/);
    expect(() => make({ sessions: 0 })).toThrow(/VerifyJob x sessions: 0 must be an integer ≥ 1/);
    expect(() => make({ activeDeadlineSeconds: 10 })).toThrow(/activeDeadlineSeconds: 10 must be an integer ≥ 60/);
  });
});
