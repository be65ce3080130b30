/** Least-privilege identity of the EPP: read pods and InferencePools in its own namespace, nothing else. */
import { k8s } from 'cdk8s-plus-28';
import { Construct } from 'constructs';

/** Props of {@link EppRbac}. */
export interface EppRbacProps {
  /** Name of the ServiceAccount, Role and RoleBinding. */
  readonly name: string;
  /**
   * Object labels.
   * @default {}
   */
  readonly labels?: Record<string, string>;
}

/** The verbs the EPP needs to watch its pool. */
export const EppReadVerbs = ['get', 'list', 'watch'];

/** ServiceAccount + namespaced Role + RoleBinding. */
export class EppRbac extends Construct {
  readonly serviceAccountName: string;
  readonly serviceAccount: k8s.KubeServiceAccount;
  readonly role: k8s.KubeRole;
  readonly roleBinding: k8s.KubeRoleBinding;

  constructor(scope: Construct, id: string, props: EppRbacProps) {
    super(scope, id);
    const metadata = { name: props.name, labels: { ...(props.labels ?? {}) } };
    this.serviceAccountName = props.name;
    this.serviceAccount = new k8s.KubeServiceAccount(this, 'ServiceAccount', { metadata, automountServiceAccountToken: true });
    this.role = new k8s.KubeRole(this, 'Role', {
      metadata,
      rules: [
        { apiGroups: [''], resources: ['pods'], verbs: [...EppReadVerbs] },
        { apiGroups: ['inference.networking.k8s.io'], resources: ['inferencepools'], verbs: [...EppReadVerbs] },
        // InferenceObjective priorities for admission (admission.watchObjectives)
        { apiGroups: ['inference.networking.x-k8s.io'], resources: ['inferenceobjectives'], verbs: [...EppReadVerbs] },
      ],
    });
    this.roleBinding = new k8s.KubeRoleBinding(this, 'RoleBinding', {
      metadata,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: props.name },
      subjects: [{ kind: 'ServiceAccount', name: props.name }],
    });
  }
}
