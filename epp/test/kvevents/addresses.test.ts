import { endpointHost, podEventAddresses } from '../../src/kvevents/addresses.js';
import { offsetEndpointPort } from '../../src/kvevents/replay.js';

describe('pod event addresses', () => {
  it('derives publisher and replay addresses from ip:port', () => {
    expect(podEventAddresses('10.0.0.7:8000', 5557, 5556)).toEqual({ publisher: 'tcp://10.0.0.7:5557', replay: 'tcp://10.0.0.7:5556' });
    expect(podEventAddresses('[fd00::7]:8000', 5557)).toEqual({ publisher: 'tcp://[fd00::7]:5557' });
    expect(endpointHost('pod-a')).toBe('pod-a');
  });

  it('rejects unbracketed IPv6 with a fix', () => {
    expect(() => endpointHost('fd00::7:8000')).toThrow('write "[addr]:port"');
    expect(() => endpointHost('[fd00::7:8000')).toThrow('unterminated');
  });

  it('offsets tcp ports by the data-parallel rank like vLLM', () => {
    expect(offsetEndpointPort('tcp://10.0.0.7:5556', 0)).toBe('tcp://10.0.0.7:5556');
    expect(offsetEndpointPort('tcp://10.0.0.7:5556', 2)).toBe('tcp://10.0.0.7:5558');
    expect(offsetEndpointPort('tcp://[fd00::7]:5556', 1)).toBe('tcp://[fd00::7]:5557');
    expect(offsetEndpointPort('ipc:///tmp/x', 1)).toBe('ipc:///tmp/x');
  });
});
