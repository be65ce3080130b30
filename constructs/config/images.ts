/**
 * Where the pods pull their images from: `images.registry` moves every image to another registry
 * (a mirror or a private registry holding copies under the same paths), and `images.imagePullSecrets`
 * names the Secrets each pod uses to log in to it.
 */

const LABEL = '[a-z0-9](?:[-a-z0-9]*[a-z0-9])?';
const HOST = `(?:localhost(?::[0-9]{1,5})?|${LABEL}(?:\\.${LABEL})+(?::[0-9]{1,5})?|${LABEL}:[0-9]{1,5})`;
const PATH_COMPONENT = '[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*';
/**
 * A registry host — "localhost", a name with a dot, or a name with a port, as container runtimes
 * require (a bare name would be read as a Docker Hub account) — and an optional path, no scheme,
 * no trailing "/": "registry.example.com", "registry.example.com:5000/mirror", "docker.io/myorg".
 */
export const REGISTRY_PATTERN = new RegExp(`^${HOST}(?:/${PATH_COMPONENT})*$`);

/** A Secret name (RFC 1123 subdomain). */
export const SECRET_NAME_PATTERN = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

/** The registry every image reference without one comes from (Docker Hub). */
export const DEFAULT_REGISTRY = 'docker.io';

/** An image reference split into registry, repository path and tag/digest suffix. */
export interface ImageParts {
  /** e.g. "ghcr.io", "docker.io" (implicit in "redis:7"). */
  readonly registry: string;
  /** e.g. "llm-d/llm-d-routing-sidecar", "library/redis" (Docker Hub's official images). */
  readonly repository: string;
  /** ":tag", "@sha256:…" or ":tag@sha256:…". */
  readonly suffix: string;
}

/** Splits an image reference the way container runtimes do (first component is a registry when it has "." or ":" or is "localhost"). */
export function parseImage(image: string): ImageParts {
  const at = image.indexOf('@');
  const beforeDigest = at >= 0 ? image.slice(0, at) : image;
  const digest = at >= 0 ? image.slice(at) : '';
  const lastSlash = beforeDigest.lastIndexOf('/');
  const colon = beforeDigest.lastIndexOf(':');
  const hasTag = colon > lastSlash;
  const name = hasTag ? beforeDigest.slice(0, colon) : beforeDigest;
  const suffix = (hasTag ? beforeDigest.slice(colon) : '') + digest;
  const slash = name.indexOf('/');
  const first = slash >= 0 ? name.slice(0, slash) : '';
  if (slash >= 0 && (first.includes('.') || first.includes(':') || first === 'localhost')) {
    return { registry: first, repository: name.slice(slash + 1), suffix };
  }
  return { registry: DEFAULT_REGISTRY, repository: slash >= 0 ? name : `library/${name}`, suffix };
}

/**
 * `image` pulled from `registry` instead of its own: the repository path and tag stay, so a mirror
 * holds each image under its upstream path ("vllm/vllm-openai", "library/redis", "kvroute/kvroute-epp").
 * Without a registry the image is returned unchanged.
 */
export function withRegistry(image: string, registry: string | undefined): string {
  if (registry === undefined) return image;
  const p = parseImage(image);
  return `${registry}/${p.repository}${p.suffix}`;
}

/**
 * The pod's `imagePullSecrets` for the given Secret names, or undefined when there are none (the
 * field is then left out of the manifest).
 * @param owner names the construct in the error, e.g. "EndpointPicker kvroute-epp"
 * @throws Error naming the construct, the index, the bad name and the fix
 */
export function imagePullSecretRefs(names: readonly string[] | undefined, owner: string): { name: string }[] | undefined {
  if (names === undefined || names.length === 0) return undefined;
  names.forEach((n, i) => {
    if (!SECRET_NAME_PATTERN.test(n) || n.length > 253) {
      throw new Error(`${owner}: imagePullSecrets[${i}] ${JSON.stringify(n)} is not a Secret name; use the name of a kubernetes.io/dockerconfigjson Secret in the namespace (lower-case letters, digits, "-" and ".")`);
    }
  });
  const dup = names.find((n, i) => names.indexOf(n) !== i);
  if (dup !== undefined) throw new Error(`${owner}: imagePullSecrets lists ${JSON.stringify(dup)} twice; list each Secret once`);
  return names.map((name) => ({ name }));
}
