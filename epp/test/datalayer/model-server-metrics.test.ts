/**
 * Metric names other than vLLM's (llm-d's metric flags): the scraper reads SGLang's and Triton
 * TensorRT-LLM's gauges from real HTTP(S) servers, with label-narrowed specs, a metrics path and
 * port of their own, and self-signed https.
 */
import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { EndpointStore } from '../../src/datalayer/endpoint-store.js';
import { metricNamesFrom, MetricsScraper, metricsUrlFor, parseMetricSpec } from '../../src/datalayer/metrics-scraper.js';
import { createSelfSignedCertificate } from '../../src/extproc/self-signed.js';
import { silentLogger } from '../../src/util/logger.js';

const SGLANG_PAGE = [
  '# TYPE sglang:num_queue_reqs gauge',
  'sglang:num_queue_reqs{model_name="qwen",engine_type="unified",tp_rank="0"} 3',
  'sglang:num_queue_reqs{model_name="qwen",engine_type="unified",tp_rank="1"} 4',
  'sglang:num_running_reqs{model_name="qwen",engine_type="unified",tp_rank="0"} 9',
  'sglang:token_usage{model_name="qwen",engine_type="unified",tp_rank="0"} 0.41',
  'sglang:cache_config_info{page_size="32"} 1',
  'vllm:num_requests_waiting 99',
  '',
].join('\n');

const TRITON_PAGE = [
  'nv_trt_llm_request_metrics{model="ensemble",request_type="waiting",version="1"} 5',
  'nv_trt_llm_request_metrics{model="ensemble",request_type="scheduled",version="1"} 2',
  'nv_trt_llm_request_metrics{model="ensemble",request_type="context",version="1"} 40',
  'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="fraction",model="ensemble",version="1"} 0.6',
  'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type="max",model="ensemble",version="1"} 9000',
  '',
].join('\n');

async function listen(server: Server): Promise<number> {
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return (server.address() as AddressInfo).port;
}

describe('metric specs', () => {
  it('parses name, name{label=value,...} and the chart\'s quoted values; "" is none', () => {
    expect(parseMetricSpec('sglang:num_queue_reqs')).toEqual({ name: 'sglang:num_queue_reqs', labels: {} });
    expect(parseMetricSpec('"sglang:num_queue_reqs"')).toEqual({ name: 'sglang:num_queue_reqs', labels: {} });
    expect(parseMetricSpec('nv_trt_llm_request_metrics{request_type=waiting, model="ensemble"}')).toEqual({ name: 'nv_trt_llm_request_metrics', labels: { request_type: 'waiting', model: 'ensemble' } });
    expect(parseMetricSpec('')).toBeUndefined();
    expect(parseMetricSpec('""')).toBeUndefined();
    expect(() => parseMetricSpec('a b')).toThrow('metric "a b" is not name or name{label=value,...}');
  });

  it('metrics URLs follow scheme, path and port, or the endpoint itself', () => {
    expect(metricsUrlFor('10.0.0.1:8000')).toBe('http://10.0.0.1:8000/metrics');
    expect(metricsUrlFor('[fd00::1]:8000', { scheme: 'https', path: '/prometheus/metrics', port: 8002 })).toBe('https://[fd00::1]:8002/prometheus/metrics');
    expect(metricsUrlFor('10.0.0.1:8000', { scheme: 'http', path: '/m' })).toBe('http://10.0.0.1:8000/m');
  });
});

describe('scraping non-vLLM model servers', () => {
  const servers: Server[] = [];
  afterAll(async () => {
    for (const s of servers) await new Promise<void>((r) => s.close(() => r()));
  });

  it('SGLang: sums the queue over ranks, reads token_usage and the page size, ignores vLLM names', async () => {
    const server = createHttpServer((_req, res) => res.end(SGLANG_PAGE));
    servers.push(server);
    const port = await listen(server);
    const store = new EndpointStore();
    const address = `127.0.0.1:${port}`;
    store.upsert({ address, name: 'sg', role: 'both', metricsUrl: metricsUrlFor(address) });
    const names = metricNamesFrom({ queued: 'sglang:num_queue_reqs', running: 'sglang:num_running_reqs', kvCacheUsage: 'sglang:token_usage', cacheInfo: 'sglang:cache_config_info' });
    const scraper = new MetricsScraper({ store, logger: silentLogger(), metricNames: names, timeoutMs: 5000 });
    expect(await scraper.scrapeOne(address, metricsUrlFor(address))).toBe(true);
    expect(store.freshMetrics(address)).toMatchObject({ waiting: 7, running: 9, kvCacheUsage: 0.41, blockSize: 32 });
    // the default (vLLM) names find no running gauge on this page
    const vllm = new MetricsScraper({ store: new EndpointStore(), logger: silentLogger(), timeoutMs: 5000 });
    expect(await vllm.scrapeOne(address, metricsUrlFor(address))).toBe(false);
  });

  it('Triton TensorRT-LLM: label-narrowed specs, no KV metric when turned off, https with a self-signed certificate', async () => {
    const pair = await createSelfSignedCertificate({ hosts: ['127.0.0.1'] });
    const paths: string[] = [];
    const server = createHttpsServer({ cert: pair.certPem, key: pair.keyPem }, (req, res) => {
      paths.push(req.url ?? '');
      res.end(req.url === '/prometheus/metrics' ? TRITON_PAGE : '');
    });
    servers.push(server);
    const port = await listen(server);
    const address = `127.0.0.1:${port}`;
    const location = { scheme: 'https' as const, path: '/prometheus/metrics' };
    const store = new EndpointStore();
    store.upsert({ address, name: 'trt', role: 'both', metricsUrl: metricsUrlFor(address, location) });
    const names = metricNamesFrom({
      queued: 'nv_trt_llm_request_metrics{request_type=waiting}',
      running: 'nv_trt_llm_request_metrics{request_type=scheduled}',
      kvCacheUsage: 'nv_trt_llm_kv_cache_block_metrics{kv_cache_block_type=fraction}',
      cacheInfo: '',
    });
    const insecure = new MetricsScraper({ store, logger: silentLogger(), metricNames: names, insecureSkipVerify: true, timeoutMs: 5000 });
    expect(await insecure.scrapeOne(address, metricsUrlFor(address, location))).toBe(true);
    expect(store.freshMetrics(address)).toMatchObject({ waiting: 5, running: 2, kvCacheUsage: 0.6, blockSize: undefined });
    expect(paths).toEqual(['/prometheus/metrics']);
    // verifying the certificate (insecureSkipVerify false) fails against the self-signed one
    const strict = new MetricsScraper({ store: new EndpointStore(), logger: silentLogger(), metricNames: names, timeoutMs: 5000 });
    expect(await strict.scrapeOne(address, metricsUrlFor(address, location))).toBe(false);
    // with the KV metric turned off ("" as the chart passes for triton), the usage is unknown
    const noKv = metricNamesFrom({ queued: 'nv_trt_llm_request_metrics{request_type=waiting}', running: 'nv_trt_llm_request_metrics{request_type=scheduled}', kvCacheUsage: '', cacheInfo: '' });
    const store2 = new EndpointStore();
    store2.upsert({ address, name: 'trt', role: 'both', metricsUrl: metricsUrlFor(address, location) });
    expect(await new MetricsScraper({ store: store2, logger: silentLogger(), metricNames: noKv, insecureSkipVerify: true, timeoutMs: 5000 }).scrapeOne(address, metricsUrlFor(address, location))).toBe(true);
    expect(store2.freshMetrics(address)).toMatchObject({ waiting: 5, running: 2, kvCacheUsage: undefined });
  });
});
