/**
 * A self-signed X.509 v3 certificate for the ext_proc TLS port, built with @peculiar/x509 on
 * node's WebCrypto — no network, and no `openssl` binary (slim container images lack it).
 *
 * Key: ECDSA P-256; signature ecdsa-with-SHA256; subject = issuer = CN=<commonName>;
 * extensions: subjectAltName (DNS names and IPs from `hosts`) and basicConstraints CA:TRUE
 * (critical), so a client can pin this very certificate as its CA. Gateways usually skip
 * verification for the EPP, but a client that pins the certificate works too.
 */
import { webcrypto } from 'node:crypto';
import { isIP } from 'node:net';
import { hostname } from 'node:os';
// @peculiar/x509 2.x resolves its algorithms through tsyringe, which needs the Reflect metadata polyfill.
import 'reflect-metadata';
import * as x509 from '@peculiar/x509';

export interface SelfSignedOptions {
  /** Subject common name. @default 'kvroute-epp' */
  readonly commonName?: string;
  /** DNS names and IPs for subjectAltName. @default ['localhost', '127.0.0.1', '::1', os.hostname()] */
  readonly hosts?: readonly string[];
  /** Validity in days from one hour ago. @default 365 */
  readonly days?: number;
}

export interface CertificatePair {
  readonly certPem: string;
  readonly keyPem: string;
}

const ECDSA_P256 = { name: 'ECDSA', namedCurve: 'P-256', hash: 'SHA-256' } as const;

/** Generates a fresh key pair and a self-signed certificate (PEM). */
export async function createSelfSignedCertificate(opts: SelfSignedOptions = {}): Promise<CertificatePair> {
  const cn = opts.commonName ?? 'kvroute-epp';
  const hosts = [...new Set(opts.hosts ?? ['localhost', '127.0.0.1', '::1', hostname()])];
  const days = opts.days ?? 365;
  if (!(Number.isFinite(days) && days > 0)) throw new Error(`self-signed certificate: days ${days} must be a positive number of days`);
  const crypto = webcrypto;
  const keys = await crypto.subtle.generateKey(ECDSA_P256, true, ['sign', 'verify']);
  const notBefore = new Date(Date.now() - 3600_000);
  const notAfter = new Date(notBefore.getTime() + days * 86_400_000);
  const cert = await x509.X509CertificateGenerator.createSelfSigned(
    {
      name: `CN=${cn}`,
      notBefore,
      notAfter,
      keys,
      signingAlgorithm: ECDSA_P256,
      extensions: [
        new x509.SubjectAlternativeNameExtension(hosts.map((h) => ({ type: isIP(h) ? ('ip' as const) : ('dns' as const), value: h }))),
        new x509.BasicConstraintsExtension(true, undefined, true),
      ],
    },
    crypto,
  );
  const pkcs8 = await crypto.subtle.exportKey('pkcs8', keys.privateKey);
  return { certPem: cert.toString('pem') + '\n', keyPem: x509.PemConverter.encode(pkcs8, 'PRIVATE KEY') + '\n' };
}
