/** Something an HTTPRoute can send traffic to: an InferencePool or a plain Service port. */
export interface HttpBackendRef {
  /**
   * API group of the backend.
   * @default '' (core)
   */
  readonly group?: string;
  readonly kind: string;
  readonly name: string;
  /**
   * Port (required for Services, absent for InferencePools).
   * @default - none
   */
  readonly port?: number;
}

/** Capability interface of route backends. */
export interface HttpBackend {
  /** The `backendRefs[]` entry. */
  toBackendRef(): HttpBackendRef;
}

/** A core Service port as a route backend. */
export class ServiceBackend implements HttpBackend {
  /** The Service `name` on `port`. */
  static of(name: string, port: number): ServiceBackend {
    return new ServiceBackend(name, port);
  }

  private constructor(
    readonly name: string,
    readonly port: number,
  ) {
    if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`ServiceBackend ${name}: port ${port} is not a TCP port`);
  }

  toBackendRef(): HttpBackendRef {
    return { group: '', kind: 'Service', name: this.name, port: this.port };
  }
}
