import { TopicError, parseTopic, parseTopicFrame } from '../../src/kvevents/topic.js';

describe('parseTopic', () => {
  it.each([
    ['kv@10.0.0.7:8000@meta-llama/Llama-3.2-1B', '10.0.0.7:8000', 'meta-llama/Llama-3.2-1B'],
    ['kv@[fd00::7]:8000@Qwen/Qwen3-32B', '[fd00::7]:8000', 'Qwen/Qwen3-32B'],
    ['kv@[::1]:8000@m', '[::1]:8000', 'm'],
    ['kv@pod-a@m', 'pod-a', 'm'],
    ['kv@10.0.0.7:8000@org/model@rev-2', '10.0.0.7:8000', 'org/model@rev-2'],
    ['kv@10.0.0.7:8000@@weird', '10.0.0.7:8000', '@weird'],
  ])('%s', (topic, pod, model) => {
    expect(parseTopic(topic)).toEqual({ pod, model });
  });

  it.each([
    ['', 'does not start with'],
    ['kv-events', 'does not start with'],
    ['KV@1.2.3.4:1@m', 'does not start with'],
    ['kv@1.2.3.4:8000', 'no "@<model>"'],
    ['kv@@m', 'empty pod id'],
    ['kv@1.2.3.4:8000@', 'empty model'],
    ['kv@1.2.3.4:8000@my model', 'whitespace'],
    ['kv@1.2.3.4:8000@m\u0000', 'control'],
    ['kv@fd00::7:8000@m', 'unbracketed IPv6'],
    ['kv@[fd00::zz]:8000@m', 'not a valid "[ipv6]:port"'],
    ['kv@host:http@m', 'non-numeric port'],
  ])('rejects %j', (topic, msg) => {
    expect(() => parseTopic(topic)).toThrow(TopicError);
    expect(() => parseTopic(topic)).toThrow(msg);
  });

  it('shortens a huge topic in the error message', () => {
    let msg = '';
    try {
      parseTopic('x'.repeat(100_000));
    } catch (e) {
      msg = (e as Error).message;
    }
    expect(msg).toContain('does not start with');
    expect(msg.length).toBeLessThan(400);
  });

  it('names the expected form in the error', () => {
    expect(() => parseTopic('kv@x')).toThrow('kv@<ip:port>@<model>');
  });

  it('rejects invalid UTF-8 in the topic frame', () => {
    expect(() => parseTopicFrame(new Uint8Array([0x6b, 0x76, 0x40, 0xff, 0x40, 0x6d]))).toThrow('not valid UTF-8');
    expect(parseTopicFrame(Buffer.from('kv@1.2.3.4:5@m/n', 'utf8'))).toEqual({ pod: '1.2.3.4:5', model: 'm/n' });
  });

  it('frames are remembered by their bytes: same answer again, a bad frame throws every time, UTF-8 kept', () => {
    const frame = Buffer.from('kv@10.1.2.3:8000@org/Modèl@rev', 'utf8');
    const first = parseTopicFrame(frame);
    expect(first).toEqual({ pod: '10.1.2.3:8000', model: 'org/Modèl@rev' });
    // a copy of the bytes at another offset of a bigger buffer
    const inside = Buffer.concat([Buffer.from('xx'), frame]).subarray(2);
    expect(parseTopicFrame(inside)).toBe(first);
    const bad = Buffer.from('kv@a b@m');
    expect(() => parseTopicFrame(bad)).toThrow('whitespace or control characters');
    expect(() => parseTopicFrame(bad)).toThrow('whitespace or control characters');
    // the latin1 key of invalid UTF-8 never yields a cached answer
    expect(() => parseTopicFrame(new Uint8Array([0x6b, 0x76, 0x40, 0xff, 0x40, 0x6d]))).toThrow('not valid UTF-8');
  });
});
