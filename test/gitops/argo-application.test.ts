import { Testing } from 'cdk8s';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { ArgoApplication } from '../../constructs/gitops/argo-application.js';
import { findObject, type K8sObject, objectsOfKind, synthObjects } from '../support/synth.js';

describe('Argo CD Application', () => {
  it('points at dist/ with repo URL and revision from config and the sync options CRs need', () => {
    const o = synthObjects(parseDeploymentConfig({ argocd: { repoURL: 'https://git.example.com/team/kv.git', targetRevision: 'v1.2.3' } }));
    const app = findObject(o, 'Application', 'kvroute');
    expect(app.apiVersion).toBe('argoproj.io/v1alpha1');
    expect(app.metadata.namespace).toBe('argocd');
    expect(app.metadata.labels).toMatchObject({ 'kvroute.dev/bootstrap': 'true' });
    expect(o.filter((x) => x.metadata.labels?.['kvroute.dev/bootstrap'] === 'true').map((x) => x.kind)).toEqual(['Application']);
    expect(app.spec).toEqual({
      project: 'default',
      source: { repoURL: 'https://git.example.com/team/kv.git', targetRevision: 'v1.2.3', path: 'dist', directory: { recurse: true } },
      destination: { server: 'https://kubernetes.default.svc', namespace: 'llm-d' },
      syncPolicy: { automated: { prune: true, selfHeal: true }, syncOptions: ['CreateNamespace=true', 'ServerSideApply=true', 'SkipDryRunOnMissingResource=true'] },
    });
  });

  it('argocd.enabled=false drops it; automated=false keeps manual sync', () => {
    expect(objectsOfKind(synthObjects(parseDeploymentConfig({ argocd: { enabled: false } })), 'Application')).toHaveLength(0);
    const app = findObject(synthObjects(parseDeploymentConfig({ argocd: { automated: false } })), 'Application', 'kvroute');
    expect((app.spec as { syncPolicy: Record<string, unknown> }).syncPolicy).not.toHaveProperty('automated');
  });

  it('construct defaults and repo URL check', () => {
    const chart = Testing.chart();
    new ArgoApplication(chart, 'a', { name: 'a', repoURL: 'git@github.com:o/r.git', targetRevision: 'main', path: 'dist', destinationNamespace: 'x' });
    const app = Testing.synth(chart)[0] as K8sObject;
    expect(app.metadata.namespace).toBe('argocd');
    expect((app.spec as { project: string }).project).toBe('default');
    expect(() => new ArgoApplication(Testing.chart(), 'b', { name: 'b', repoURL: 'not a url', targetRevision: 'main', path: 'dist', destinationNamespace: 'x' })).toThrow(
      /repoURL "not a url" is not a git URL/,
    );
  });
});
