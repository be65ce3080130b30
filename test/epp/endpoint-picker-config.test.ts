/**
 * `epp.endpointPickerConfig`: an llm-d EndpointPickerConfig carried in the deployment config is
 * read at synth by the EPP's own loader into the EPP ConfigMap's scheduling; bad ones fail synth
 * naming the field. Unset (the default), the ConfigMap's scheduling is the EPP's default.
 */
import { parseEppConfig } from '@kvroute/epp/contract';
import { parse } from 'yaml';
import { parseDeploymentConfig } from '../../constructs/config/deployment-config.js';
import { EppConfigKey } from '../../constructs/epp/endpoint-picker.js';
import { findObject, synthObjects } from '../support/synth.js';

const ESTIMATE = `
apiVersion: llm-d.ai/v1alpha1
kind: EndpointPickerConfig
plugins:
- type: single-profile-handler
- type: decode-filter
- type: prefix-cache-scorer
- type: load-aware-scorer
- type: max-score-picker
schedulingProfiles:
- name: default
  plugins:
  - pluginRef: decode-filter
  - pluginRef: prefix-cache-scorer
    weight: 1
  - pluginRef: load-aware-scorer
    weight: 1
  - pluginRef: max-score-picker
`;

const eppConfigOf = (epp: Record<string, unknown>) => {
  const cm = findObject(synthObjects(parseDeploymentConfig({ epp })), 'ConfigMap', 'kvroute-epp-config');
  return parseEppConfig(parse((cm.data as Record<string, string>)[EppConfigKey]));
};

describe('epp.endpointPickerConfig', () => {
  it('@default undefined: the EPP config has no plugins or profiles (its default scheduling)', () => {
    expect(parseDeploymentConfig({}).epp.endpointPickerConfig).toBeUndefined();
    const c = eppConfigOf({});
    expect(c.scheduling.plugins).toBeUndefined();
    expect(c.scheduling.profiles).toBeUndefined();
  });

  it('YAML text becomes the EPP config\'s plugins and profiles', () => {
    const c = eppConfigOf({ endpointPickerConfig: ESTIMATE });
    expect(c.scheduling.plugins).toEqual([{ type: 'single-profile-handler' }, { type: 'decode-filter' }, { type: 'prefix-cache-scorer' }, { type: 'load-aware-scorer' }, { type: 'max-score-picker' }]);
    expect(c.scheduling.profiles).toEqual([
      { name: 'default', plugins: [{ pluginRef: 'decode-filter' }, { pluginRef: 'prefix-cache-scorer', weight: 1 }, { pluginRef: 'load-aware-scorer', weight: 1 }, { pluginRef: 'max-score-picker' }] },
    ]);
  });

  it('the parsed object works too', () => {
    const c = eppConfigOf({ endpointPickerConfig: parse(ESTIMATE) as Record<string, unknown> });
    expect(c.scheduling.profiles?.[0]?.plugins.map((p) => p.pluginRef)).toEqual(['decode-filter', 'prefix-cache-scorer', 'load-aware-scorer', 'max-score-picker']);
  });

  it.each([
    ['an unknown plugin type', ESTIMATE.replace('load-aware-scorer\n-', 'magic-scorer\n-'), /invalid epp\.endpointPickerConfig:\n {2}- plugins\.3\.type: plugin type "magic-scorer" is not known; use one of .*load-aware-scorer/],
    ['a block size other than vLLM\'s', 'apiVersion: llm-d.ai/v1alpha1\nkind: EndpointPickerConfig\nplugins:\n- type: precise-prefix-cache-scorer\n  parameters: { tokenProcessorConfig: { blockSize: 64 } }\n', /epp\.endpointPickerConfig: tokenProcessorConfig\.blockSize 64 differs from kvCache\.blockSize 16/],
    ['text that is not YAML', 'plugins: [', /epp\.endpointPickerConfig: not valid YAML/],
  ])('fails synth for %s, naming the field', (_name, text, message) => {
    expect(() => synthObjects(parseDeploymentConfig({ epp: { endpointPickerConfig: text } }))).toThrow(message);
  });
});
