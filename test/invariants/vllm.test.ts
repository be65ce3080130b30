import { at, broken, clean, decodeVllm, drop, setArg } from './helpers.js';
import { eppConfigYaml, miniDeployment } from './fixtures.js';
import { commandLine, flagValues, isVllmContainer, shellSplit } from './model.js';
import { gpuRequestsEqualLimits, kvEventsReachEpp, servedModelNames, vllmContainers, vllmMatchesEppConfig } from './vllm.js';
import type { Manifest } from './model.js';

type Find = (kind: string, name: string) => Manifest;
const eppConfigMap = (find: Find): Record<string, unknown> => at(find('ConfigMap', 'kv-epp-config'), 'data');

/** Rewrite the kv-events JSON of the decode vLLM container. */
function editEvents(find: Find, edit: (ev: Record<string, unknown>) => void): void {
  const c = decodeVllm(find);
  const args = c.args as string[];
  const i = args.indexOf('--kv-events-config') + 1;
  const ev = JSON.parse(args[i]) as Record<string, unknown>;
  edit(ev);
  args[i] = JSON.stringify(ev);
}

describe('command-line parsing', () => {
  it('flags as --f=v, --f v, underscores, short flags and booleans', () => {
    const t = ['vllm', 'serve', 'm', '--block_size', '16', '--max-num-seqs=8', '-tp', '2', '--enable-prefix-caching', '--x'];
    expect(flagValues(t, '--block-size')).toEqual(['16']);
    expect(flagValues(t, '--max-num-seqs')).toEqual(['8']);
    expect(flagValues(t, '-tp')).toEqual(['2']);
    expect(flagValues(t, '--enable-prefix-caching')).toEqual(['']);
    expect(flagValues(t, '--missing')).toEqual([]);
  });
  it('splits `sh -c` scripts shell-style', () => {
    expect(shellSplit(`exec vllm serve "a b" --kv-events-config '{"x": 1}' && echo \\"q`)).toEqual(['exec', 'vllm', 'serve', 'a b', '--kv-events-config', '{"x": 1}', 'echo', '"q']);
    expect(commandLine({ command: ['/bin/sh', '-c'], args: ['vllm serve m --block-size 32'] })).toEqual(['/bin/sh', '-c', 'vllm', 'serve', 'm', '--block-size', '32']);
  });
  it('served model names: --served-model-name (several), else the serve argument, else --model', () => {
    expect(servedModelNames(['vllm', 'serve', 'x', '--served-model-name', 'a', 'b', '--port', '1'])).toEqual(['a', 'b']);
    expect(servedModelNames(['vllm', 'serve', 'org/m', '--port=1'])).toEqual(['org/m']);
    expect(servedModelNames(['python', '-m', 'vllm.entrypoints.openai.api_server', '--model', 'm'])).toEqual(['m']);
  });
  it('recognizes vLLM servers but not the routing sidecar', () => {
    expect(isVllmContainer({ image: 'ghcr.io/llm-d/llm-d:v0.2.0', command: ['vllm', 'serve', 'm'] })).toBe(true);
    expect(isVllmContainer({ image: 'vllm/vllm-openai:v0.11.0', args: ['--model', 'm'] })).toBe(true);
    expect(isVllmContainer({ image: 'ghcr.io/llm-d/llm-d-routing-sidecar:v0.2.0' })).toBe(false);
    expect(vllmContainers(miniDeployment()).map((c) => `${c.owner} ${c.path}`)).toEqual([
      'Deployment llm-d/kv-decode /spec/template/spec/containers/0',
      'Deployment llm-d/kv-prefill /spec/template/spec/containers/0',
      'ModelService llm-d/kv-ms /spec/decode/containers/0',
    ]);
  });
});

describe('vllmMatchesEppConfig', () => {
  it('holds for the fixture', () => expect(clean(vllmMatchesEppConfig)).toEqual([]));

  it('fails when --block-size differs from the EPP blockSize', () => {
    const m = broken(vllmMatchesEppConfig, (_, find) => setArg(decodeVllm(find), '--block-size', '--block-size=64'));
    expect(m).toEqual([expect.stringMatching(/^Deployment llm-d\/kv-decode: container "vllm" .* --block-size is \["64"\]; expected "16" = EPP config blockSize/)]);
  });

  it('fails when the EPP config changes instead (every vLLM container is reported)', () => {
    const m = broken(vllmMatchesEppConfig, (_, find) => {
      eppConfigMap(find)['epp-config.yaml'] = eppConfigYaml.replace('blockSize: 16', 'blockSize: 32');
    });
    expect(m).toHaveLength(3);
    expect(m.every((x) => /expected "32" = EPP config blockSize/.test(x))).toBe(true);
  });

  it('fails for a builtin hash algo, a missing block size and a missing seed', () => {
    const m = broken(vllmMatchesEppConfig, (_, find) => {
      const c = decodeVllm(find);
      setArg(c, '--prefix-caching-hash-algo', '--prefix-caching-hash-algo=builtin');
      setArg(c, '--block-size', undefined);
      c.env = (c.env as Record<string, unknown>[]).filter((e) => e.name !== 'PYTHONHASHSEED');
    });
    expect(m).toEqual([
      expect.stringMatching(/--block-size is not set; expected "16"/),
      expect.stringMatching(/--prefix-caching-hash-algo is \["builtin"\]; expected "sha256_cbor"/),
      expect.stringMatching(/env PYTHONHASHSEED is not set; expected literal "42"/),
    ]);
  });

  it('fails when PYTHONHASHSEED comes from elsewhere or differs', () => {
    const m = broken(vllmMatchesEppConfig, (_, find) => {
      const env = decodeVllm(find).env as Record<string, unknown>[];
      env[0] = { name: 'PYTHONHASHSEED', valueFrom: { configMapKeyRef: { name: 'x', key: 'seed' } } };
      const prefill = at(find('Deployment', 'kv-prefill'), 'spec', 'template', 'spec', 'containers', 0).env as Record<string, unknown>[];
      prefill[0] = { name: 'PYTHONHASHSEED', value: '0' };
    });
    expect(m).toEqual([expect.stringMatching(/kv-decode: .*PYTHONHASHSEED is \{"configMapKeyRef"/), expect.stringMatching(/kv-prefill: .*PYTHONHASHSEED is "0"; expected literal "42"/)]);
  });

  it('fails when the served model name differs, and when prefix caching is disabled', () => {
    const m = broken(vllmMatchesEppConfig, (_, find) => {
      const args = decodeVllm(find).args as string[];
      args[args.indexOf('--served-model-name') + 1] = 'llama';
      args.push('--no-enable-prefix-caching');
    });
    expect(m).toEqual([expect.stringMatching(/disables prefix caching/), expect.stringMatching(/serves \["llama"\]; expected "meta-llama\/Llama-3.2-1B"/)]);
  });

  it('fails when there is no EPP config, an invalid one, or two that disagree', () => {
    expect(broken(vllmMatchesEppConfig, (objs) => drop(objs, 'ConfigMap', 'kv-epp-config'))).toEqual([expect.stringMatching(/no ConfigMap holds an EPP config/)]);
    expect(broken(vllmMatchesEppConfig, (_, find) => {
      eppConfigMap(find)['epp-config.yaml'] = eppConfigYaml.replace('blockSize: 16', 'blockSize: 24');
    })).toEqual([expect.stringMatching(/blockSize: blockSize 24 is not a power of two/), expect.stringMatching(/no ConfigMap holds an EPP config/)]);
    expect(broken(vllmMatchesEppConfig, (_, find) => {
      eppConfigMap(find)['second.yaml'] = eppConfigYaml.replace('hashSeed: "42"', 'hashSeed: "7"');
    })).toEqual([expect.stringMatching(/disagrees with ConfigMap llm-d\/kv-epp-config/)]);
  });

  it('fails when no vLLM container can be found (no vacuous pass)', () => {
    expect(vllmMatchesEppConfig([])).toEqual([expect.objectContaining({ message: expect.stringMatching(/no vLLM container found/) })]);
  });
});

describe('kvEventsReachEpp', () => {
  it('holds for the fixture (vLLM connects to the EPP Service ZMQ port)', () => expect(clean(kvEventsReachEpp)).toEqual([]));

  it('fails without --kv-events-config (the seed bug)', () => {
    const m = broken(kvEventsReachEpp, (_, find) => {
      const c = decodeVllm(find);
      const args = c.args as string[];
      args.splice(args.indexOf('--kv-events-config'), 2);
    });
    expect(m).toEqual([expect.stringMatching(/kv-decode: container "vllm" .* has no --kv-events-config/)]);
  });

  it('fails for malformed JSON, events off, and another publisher', () => {
    expect(broken(kvEventsReachEpp, (_, find) => {
      const args = decodeVllm(find).args as string[];
      args[args.indexOf('--kv-events-config') + 1] = '{enable_kv_cache_events: true}';
    })).toEqual([expect.stringMatching(/--kv-events-config is not JSON/)]);
    expect(broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.enable_kv_cache_events = false;
      ev.publisher = 'null';
    }))).toEqual([expect.stringMatching(/enable_kv_cache_events is false/), expect.stringMatching(/publisher is "null"/)]);
  });

  it('fails when the endpoint is not the EPP Service or not its ZMQ port', () => {
    expect(broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.endpoint = 'tcp://gaie-kv-epp.llm-d.svc.cluster.local:5557';
    }))).toEqual([expect.stringMatching(/endpoint host gaie-kv-epp.llm-d.svc.cluster.local is not the EPP Service/)]);
    expect(broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.endpoint = 'tcp://kv-epp.llm-d.svc.cluster.local:9002';
    }))).toEqual([expect.stringMatching(/endpoint port 9002 of Service llm-d\/kv-epp does not reach the EPP's ZMQ bind port 5557/)]);
    expect(broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.endpoint = 'kv-epp:5557';
    }))).toEqual([expect.stringMatching(/endpoint "kv-epp:5557" is not tcp:\/\/host:port/)]);
  });

  it('fails for a topic without port, with another model, or with an ip not from status.podIP', () => {
    expect(broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.topic = 'kv@$(POD_IP)@meta-llama/Llama-3.2-1B';
    }))).toEqual([expect.stringMatching(/topic "kv@\$\(POD_IP\)@meta-llama\/Llama-3.2-1B" is not kv@<ip>:<port>@<model>/)]);
    expect(broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.topic = 'kv@$(POD_IP):8000@llama';
    }))).toEqual([expect.stringMatching(/topic model "llama" differs from EPP config model "meta-llama\/Llama-3.2-1B"/)]);
    expect(broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.topic = 'kv@$(HOSTNAME):8000@meta-llama/Llama-3.2-1B';
    }))).toEqual([expect.stringMatching(/topic ip "\$\(HOSTNAME\)" must be \$\(VAR\) with env VAR from fieldRef status.podIP/)]);
  });

  it('fails when the topic port is vLLM 8200 behind the sidecar, not the pool targetPort', () => {
    const m = broken(kvEventsReachEpp, (_, find) => editEvents(find, (ev) => {
      ev.topic = 'kv@$(POD_IP):8200@meta-llama/Llama-3.2-1B';
    }));
    expect(m).toEqual([expect.stringMatching(/topic port 8200 is not a targetPort of InferencePool llm-d\/kv-pool \[8000\]/)]);
  });

  it('fails when the topic port is not a port of the pod', () => {
    const m = broken(kvEventsReachEpp, (_, find) => {
      const prefill = at(find('Deployment', 'kv-prefill'), 'spec', 'template', 'spec', 'containers', 0);
      const args = prefill.args as string[];
      const i = args.indexOf('--kv-events-config') + 1;
      args[i] = args[i].replace(':8000@', ':8100@');
    });
    expect(m).toEqual([expect.stringMatching(/kv-prefill: .*topic port 8100 is not a container port of the pod/)]);
  });

  it('connect mode: vLLM must bind the port the EPP connects to', () => {
    const connectMode = (find: Find): void => {
      eppConfigMap(find)['epp-config.yaml'] = `${eppConfigYaml}events:\n  mode: connect\n  podPublisherPort: 5557\n`;
    };
    const m = broken(kvEventsReachEpp, (_, find) => connectMode(find));
    expect(m).toHaveLength(3);
    expect(m.every((x) => /the EPP connects to pods \(events.mode connect\) on port 5557, so vLLM must bind tcp:\/\/\*:5557/.test(x))).toBe(true);
    expect(broken(kvEventsReachEpp, (objs, find) => {
      connectMode(find);
      for (const c of vllmContainers(objs)) {
        const args = c.container.args as string[];
        const i = args.indexOf('--kv-events-config') + 1;
        const ev = JSON.parse(args[i]) as Record<string, unknown>;
        ev.endpoint = 'tcp://*:5557';
        args[i] = JSON.stringify(ev);
      }
    })).toEqual([]);
  });

  it('fails when the EPP binds a port its container does not declare', () => {
    const m = broken(kvEventsReachEpp, (_, find) => {
      eppConfigMap(find)['epp-config.yaml'] = `${eppConfigYaml}events:\n  zmqBind: tcp://*:5558\n`;
    });
    expect(m[0]).toMatch(/^Deployment llm-d\/kv-epp: EPP binds ZMQ on tcp:\/\/\*:5558 but declares no container port 5558/);
  });
});

describe('gpuRequestsEqualLimits', () => {
  it('holds for the fixture', () => expect(clean(gpuRequestsEqualLimits)).toEqual([]));

  it('fails when requests and limits differ or one is missing', () => {
    const m = broken(gpuRequestsEqualLimits, (_, find) => {
      at(decodeVllm(find), 'resources', 'limits')['nvidia.com/gpu'] = '2';
      delete at(find('Deployment', 'kv-prefill'), 'spec', 'template', 'spec', 'containers', 0, 'resources', 'requests')['nvidia.com/gpu'];
    });
    expect(m).toEqual([
      expect.stringMatching(/kv-decode: .* nvidia.com\/gpu requests "1" != limits "2"/),
      expect.stringMatching(/kv-prefill: .* nvidia.com\/gpu requests undefined != limits "1"/),
    ]);
  });

  it('fails for a vLLM server without GPUs', () => {
    const m = broken(gpuRequestsEqualLimits, (_, find) => {
      const r = at(decodeVllm(find), 'resources');
      delete at(r, 'requests')['nvidia.com/gpu'];
      delete at(r, 'limits')['nvidia.com/gpu'];
    });
    expect(m).toEqual([expect.stringMatching(/is a vLLM server but requests no GPU/)]);
  });

  it('fails when the GPU count does not match tensor parallelism', () => {
    const m = broken(gpuRequestsEqualLimits, (_, find) => {
      (decodeVllm(find).args as string[]).push('--tensor-parallel-size=2');
    });
    expect(m).toEqual([expect.stringMatching(/nvidia.com\/gpu is 1 but --tensor-parallel-size × --pipeline-parallel-size is 2/)]);
  });

  it('checks ModelService containers too, with spec.<role>.parallelism.tensor', () => {
    expect(broken(gpuRequestsEqualLimits, (_, find) => {
      at(find('ModelService', 'kv-ms'), 'spec', 'decode', 'containers', 0, 'resources', 'limits')['nvidia.com/gpu'] = '4';
    })).toEqual([expect.stringMatching(/^ModelService llm-d\/kv-ms: .*requests "1" != limits "4"/)]);
    expect(broken(gpuRequestsEqualLimits, (_, find) => {
      at(find('ModelService', 'kv-ms'), 'spec', 'decode', 'parallelism').tensor = 2;
    })).toEqual([expect.stringMatching(/^ModelService llm-d\/kv-ms: .*nvidia.com\/gpu is 1 but --tensor-parallel-size × --pipeline-parallel-size is 2/)]);
  });
});
