/**
 * Pod Security Standards "restricted" settings for the non-GPU workloads (EPP, Redis):
 * non-root, no privilege escalation, all capabilities dropped, seccomp RuntimeDefault, and a
 * read-only root filesystem where the program allows.
 */
import type { k8s } from 'cdk8s-plus-28';

/** Options of {@link RestrictedSecurity.forUser}. */
export interface RestrictedSecurityOptions {
  /**
   * Read-only root filesystem (mount emptyDirs for scratch space).
   * @default true
   */
  readonly readOnlyRootFilesystem?: boolean;
}

/** The pod- and container-level security contexts of the "restricted" profile for one non-root user. */
export class RestrictedSecurity {
  /** Run as `uid` (and gid = uid). */
  static forUser(uid: number, options: RestrictedSecurityOptions = {}): RestrictedSecurity {
    return new RestrictedSecurity(uid, options.readOnlyRootFilesystem ?? true);
  }

  private constructor(
    readonly uid: number,
    readonly readOnlyRootFilesystem: boolean,
  ) {
    if (!Number.isInteger(uid) || uid < 1) {
      throw new Error(`RestrictedSecurity: uid ${uid} is not allowed by the restricted profile (root or invalid); use a non-zero user id such as 65532`);
    }
  }

  /** Pod securityContext. */
  pod(): k8s.PodSecurityContext {
    return { runAsNonRoot: true, runAsUser: this.uid, runAsGroup: this.uid, fsGroup: this.uid, seccompProfile: { type: 'RuntimeDefault' } };
  }

  /** Container securityContext. */
  container(): k8s.SecurityContext {
    return {
      runAsNonRoot: true,
      runAsUser: this.uid,
      runAsGroup: this.uid,
      allowPrivilegeEscalation: false,
      privileged: false,
      readOnlyRootFilesystem: this.readOnlyRootFilesystem,
      capabilities: { drop: ['ALL'] },
      seccompProfile: { type: 'RuntimeDefault' },
    };
  }
}
