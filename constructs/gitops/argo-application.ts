/** Argo CD Application that applies the rendered manifests in dist/ (the rendered-manifests pattern). */
import { Construct } from 'constructs';
import { Application } from '../../imports/application-argoproj.io.js';

/** Label that marks the Application for `kubectl apply -f dist/... -l kvroute.dev/bootstrap=true`. */
export const BootstrapLabel = { 'kvroute.dev/bootstrap': 'true' } as const;

/** Sync options for CRs, large objects and a namespace created on first sync. */
export const ArgoSyncOptions = ['CreateNamespace=true', 'ServerSideApply=true', 'SkipDryRunOnMissingResource=true'] as const;

/** Props of {@link ArgoApplication}. */
export interface ArgoApplicationProps {
  readonly name: string;
  readonly repoURL: string;
  readonly targetRevision: string;
  /** Folder of the synthesized manifests. */
  readonly path: string;
  /** Namespace the manifests go to. */
  readonly destinationNamespace: string;
  /**
   * Namespace of Argo CD.
   * @default 'argocd'
   */
  readonly argocdNamespace?: string;
  /**
   * Argo CD project.
   * @default 'default'
   */
  readonly project?: string;
  /**
   * Automated sync with prune and self-heal.
   * @default true
   */
  readonly automated?: boolean;
  /**
   * Destination cluster API server.
   * @default 'https://kubernetes.default.svc'
   */
  readonly server?: string;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** The Application; lives in the Argo CD namespace. */
export class ArgoApplication extends Construct {
  readonly resource: Application;
  constructor(scope: Construct, id: string, props: ArgoApplicationProps) {
    super(scope, id);
    if (!/^(https?:\/\/|git@|ssh:\/\/)/.test(props.repoURL)) {
      throw new Error(`ArgoApplication ${props.name}: repoURL ${JSON.stringify(props.repoURL)} is not a git URL; use https://..., ssh://... or git@host:org/repo.git`);
    }
    this.resource = new Application(this, 'Resource', {
      metadata: { name: props.name, namespace: props.argocdNamespace ?? 'argocd', labels: { ...(props.labels ?? {}), ...BootstrapLabel } },
      spec: {
        project: props.project ?? 'default',
        source: { repoUrl: props.repoURL, targetRevision: props.targetRevision, path: props.path, directory: { recurse: true } },
        destination: { server: props.server ?? 'https://kubernetes.default.svc', namespace: props.destinationNamespace },
        syncPolicy: {
          ...((props.automated ?? true) ? { automated: { prune: true, selfHeal: true } } : {}),
          syncOptions: [...ArgoSyncOptions],
        },
      },
    });
  }
}
