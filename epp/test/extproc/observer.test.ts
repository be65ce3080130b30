/** ExtProcMetrics: the series exported before any request (so rate() sees the first one). */
import { Registry } from 'prom-client';
import { API_ERRORS } from '../../src/contract/errors.js';
import { ExtProcServer } from '../../src/extproc/grpc-server.js';
import { ExtProcMetrics, STREAM_OUTCOMES } from '../../src/extproc/observer.js';
import { ScriptedDirector } from './scripted-director.js';

const MODEL = 'meta-llama/Llama-3.1-8B-Instruct';

async function series(reg: Registry, name: string): Promise<string[]> {
  return (await reg.getSingleMetric(name)!.get()).values.map((v) => `${JSON.stringify(v.labels)}=${v.value}`).sort();
}

describe('ExtProcMetrics', () => {
  it('exports every stream outcome at 0 from the start', async () => {
    const reg = new Registry();
    new ExtProcMetrics(reg);
    expect(await series(reg, 'kvroute_extproc_streams_total')).toEqual(STREAM_OUTCOMES.map((o) => `{"outcome":"${o}"}=0`).sort());
    expect(STREAM_OUTCOMES).toContain('protocol_error');
  });

  it('without models (the default) request and error series appear on first use only', async () => {
    const reg = new Registry();
    const m = new ExtProcMetrics(reg);
    expect(await series(reg, 'inference_objective_request_total')).toEqual([]);
    expect(await series(reg, 'inference_objective_request_error_total')).toEqual([]);
    m.rejected({ requestId: 'r', model: 'm', targetModel: undefined, path: '/v1/completions' }, 'shed');
    expect(await series(reg, 'inference_objective_request_error_total')).toEqual(['{"model_name":"m","target_model_name":"m","error_code":"shed"}=1']);
  });

  it('with models, exports their request counter, running gauge and an error counter per error code at 0', async () => {
    const reg = new Registry();
    new ExtProcMetrics(reg, [MODEL]);
    const l = `"model_name":"${MODEL}","target_model_name":"${MODEL}"`;
    expect(await series(reg, 'inference_objective_request_total')).toEqual([`{${l}}=0`]);
    expect(await series(reg, 'inference_objective_running_requests')).toEqual([`{"model_name":"${MODEL}"}=0`]);
    const codes = Object.keys(API_ERRORS);
    expect(codes).toContain('shed');
    expect(await series(reg, 'inference_objective_request_error_total')).toEqual(codes.map((c) => `{${l},"error_code":"${c}"}=0`).sort());
  });

  it('ExtProcServer: metricModels defaults to models; metricModels overrides it', async () => {
    const director = new ScriptedDirector(['10.0.0.1:8000']);
    const models = async (opts: { models?: string[]; metricModels?: string[] }): Promise<string[]> => {
      const reg = new Registry();
      new ExtProcServer({ director, registry: reg, ...opts });
      return (await reg.getSingleMetric('inference_objective_request_total')!.get()).values.map((v) => String(v.labels.model_name));
    };
    expect(await models({})).toEqual([]);
    expect(await models({ models: ['a'] })).toEqual(['a']);
    expect(await models({ models: ['a'], metricModels: ['b'] })).toEqual(['b']);
  });
});
