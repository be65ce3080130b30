/** The one host:port module: parsing, joining, the host of an endpoint and its canonical spelling. */
import { canonicalHost, hostOf, joinHostPort, parseHostPort } from '../../src/util/host-port.js';

describe('host-port', () => {
  test.each([
    ['10.0.0.1:8000', { host: '10.0.0.1', port: 8000 }],
    ['[fd00::1]:8000', { host: 'fd00::1', port: 8000 }],
    ['fd00::1:8000', { host: 'fd00::1', port: 8000 }],
    ['pod-a.ns.svc:80', { host: 'pod-a.ns.svc', port: 80 }],
  ])('parseHostPort(%s) round-trips through joinHostPort', (s, want) => {
    const hp = parseHostPort(s);
    expect(hp).toEqual(want);
    expect(parseHostPort(joinHostPort(hp as typeof want))).toEqual(want);
  });

  test.each(['10.0.0.1', ':8000', '10.0.0.1:0', '[fd00::1', '[fd00::1]8000'])('parseHostPort rejects %s', (s) => {
    expect(parseHostPort(s)).toBeUndefined();
  });

  test('hostOf strips the port and the IPv6 brackets; a bare host is returned as is', () => {
    expect(hostOf('10.0.0.1:8000')).toBe('10.0.0.1');
    expect(hostOf('[fd00::1]:8000')).toBe('fd00::1');
    expect(hostOf('[fd00::1]')).toBe('fd00::1');
    expect(hostOf('10.0.0.1')).toBe('10.0.0.1');
  });

  test('canonicalHost spells IPv6 one way so different spellings compare equal', () => {
    expect(canonicalHost('[FD00:0::1]:8000')).toBe('fd00::1');
    expect(canonicalHost('fd00:0:0::1:9000')).toBe(canonicalHost('[fd00::1]:8000'));
    expect(canonicalHost('10.0.0.1:8000')).toBe('10.0.0.1');
    expect(canonicalHost('pod-a:80')).toBe('pod-a');
  });
});
