import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry } from 'prom-client';
import { EndpointStore } from '../../src/datalayer/endpoint-store.js';
import { extractVllmMetrics, MetricsScraper } from '../../src/datalayer/metrics-scraper.js';
import { parsePrometheusText } from '../../src/datalayer/prom-text.js';
import { silentLogger } from '../../src/util/logger.js';

const VLLM_PAGE = `# HELP vllm:num_requests_waiting Number of requests waiting to be processed.
# TYPE vllm:num_requests_waiting gauge
vllm:num_requests_waiting{engine="0",model_name="meta-llama/Llama-3.2-1B"} 7.0
vllm:num_requests_running{engine="0",model_name="meta-llama/Llama-3.2-1B"} 2.0
vllm:kv_cache_usage_perc{engine="0",model_name="meta-llama/Llama-3.2-1B"} 0.4375
vllm:cache_config_info{block_size="16",cache_dtype="auto",enable_prefix_caching="True",num_gpu_blocks="8192",prefix_caching_hash_algo="sha256_cbor"} 1.0
vllm:prefix_cache_queries_total{engine="0",model_name="meta-llama/Llama-3.2-1B"} 1200.0
`;

describe('Prometheus text parsing', () => {
  it('parses names, labels (with escapes) and values, skipping comments and junk', () => {
    const s = parsePrometheusText('# c\na{x="1",y="q\\"z"} 2.5\nb 3 1700000000\nbroken{x="1" 4\nc{} +Inf\nd notanumber\n');
    expect(s).toEqual([
      { name: 'a', labels: { x: '1', y: 'q"z' }, value: 2.5 },
      { name: 'b', labels: {}, value: 3 },
      { name: 'c', labels: {}, value: Infinity },
    ]);
  });

  it('extracts vLLM load signals, the block size and num_gpu_blocks', () => {
    expect(extractVllmMetrics(parsePrometheusText(VLLM_PAGE), 123)).toEqual({ waiting: 7, running: 2, kvCacheUsage: 0.4375, blockSize: 16, numGpuBlocks: 8192, scrapedAt: 123 });
  });

  it('falls back to the older vllm:gpu_cache_usage_perc', () => {
    const page = 'vllm:num_requests_waiting 0\nvllm:num_requests_running 1\nvllm:gpu_cache_usage_perc 0.9\n';
    expect(extractVllmMetrics(parsePrometheusText(page), 0)?.kvCacheUsage).toBe(0.9);
  });

  it('reports nothing for a page without the core gauges (not zero load)', () => {
    expect(extractVllmMetrics(parsePrometheusText('up 1\n'), 0)).toBeUndefined();
  });
});

describe('MetricsScraper', () => {
  let server: Server;
  let port: number;
  let mode: 'ok' | 'slow' | '500' | 'garbage' = 'ok';
  beforeAll(async () => {
    server = createServer((_req, res) => {
      if (mode === 'slow') return void setTimeout(() => res.end(VLLM_PAGE), 3000);
      if (mode === '500') {
        res.statusCode = 500;
        return void res.end('boom');
      }
      res.end(mode === 'garbage' ? 'hello' : VLLM_PAGE);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    server.closeAllConnections();
    await new Promise<void>((r) => server.close(() => r()));
  });

  // Generous timeouts except where the timeout is the point: this machine is shared and slow.
  function setup(timeoutMs = 2500): { store: EndpointStore; scraper: MetricsScraper; registry: Registry } {
    const store = new EndpointStore();
    store.upsert({ address: '127.0.0.9:8000', name: 'p', role: 'both', metricsUrl: `http://127.0.0.1:${port}/metrics` });
    const registry = new Registry();
    const scraper = new MetricsScraper({ store, logger: silentLogger(), timeoutMs, registry, expectedBlockSize: 16 });
    return { store, scraper, registry };
  }

  it('stores fresh metrics from a scrape', async () => {
    mode = 'ok';
    const { store, scraper } = setup();
    expect(await scraper.scrapeOne('127.0.0.9:8000', `http://127.0.0.1:${port}/metrics`)).toBe(true);
    expect(store.freshMetrics('127.0.0.9:8000')).toMatchObject({ waiting: 7, running: 2, numGpuBlocks: 8192 });
  });

  it.each([
    ['slow', 'timeout'],
    ['500', 'http'],
    ['garbage', 'parse'],
  ] as const)('counts a %s scrape as %s and stores nothing', async (m, reason) => {
    mode = m;
    const { store, scraper, registry } = setup(m === 'slow' ? 300 : 2500);
    expect(await scraper.scrapeOne('127.0.0.9:8000', `http://127.0.0.1:${port}/metrics`)).toBe(false);
    expect(store.freshMetrics('127.0.0.9:8000')).toBeUndefined();
    expect(await registry.metrics()).toContain(`kvroute_metrics_scrape_errors_total{reason="${reason}"} 1`);
  });

  it('counts an unreachable endpoint as a network error', async () => {
    const { scraper, registry } = setup();
    expect(await scraper.scrapeOne('127.0.0.9:8000', 'http://127.0.0.1:1/metrics')).toBe(false);
    expect(await registry.metrics()).toContain('kvroute_metrics_scrape_errors_total{reason="network"} 1');
  });

  it('scrapes on its interval once started', async () => {
    mode = 'ok';
    const { store, scraper } = setup();
    scraper.start();
    const deadline = Date.now() + 3000;
    while (!store.freshMetrics('127.0.0.9:8000') && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    await scraper.stop();
    expect(store.freshMetrics('127.0.0.9:8000')?.waiting).toBe(7);
  });
});
