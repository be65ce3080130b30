/**
 * Interop with a gRPC client that shares no code with grpc-js: Python's grpcio (Debian
 * `python3-grpcio`, the C-core stack like grpc-go's probes and Envoy's own client are independent
 * implementations). testkit/grpcio-interop.py calls health Check on both ports and runs one
 * ext_proc exchange with hand-encoded protobuf; the routing header must come back.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Registry } from 'prom-client';
import { Headers } from '../../src/contract/names.js';
import { ExtProcServer } from '../../src/extproc/grpc-server.js';
import { ServingStatus } from '../../src/extproc/types.js';
import { ensurePythonModule } from '../../testkit/system-packages.js';
import { PATH_COMPLETIONS } from './fixtures.js';
import { ScriptedDirector } from './scripted-director.js';

const SCRIPT = fileURLToPath(new URL('../../testkit/grpcio-interop.py', import.meta.url));

function runPython(python: string, args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    const p = spawn(python, [SCRIPT, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    p.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
    p.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    p.on('error', reject);
    p.on('close', (code) => resolve({ code, stdout, stderr }));
  });
}

test('python grpcio: health Check on both ports and one ext_proc exchange; the routing header comes back', async () => {
  const python = ensurePythonModule('grpc', 'python3-grpcio');
  const registry = new Registry();
  const director = new ScriptedDirector(['10.0.0.7:8000']);
  const server = new ExtProcServer({ director, registry });
  const bound = await server.start({ grpcPort: 0, healthPort: 0, host: '127.0.0.1' });
  try {
    const r = await runPython(python, [`127.0.0.1:${bound.grpcPort}`, `127.0.0.1:${bound.healthPort!}`, PATH_COMPLETIONS, '{"model":"m","prompt":"hello"}', Headers.destinationEndpoint]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout)).toEqual({
      health: [ServingStatus.SERVING, ServingStatus.SERVING],
      destination: '10.0.0.7:8000',
      clear_route_cache: true,
      // headers response + the body (one streamed chunk with end_of_stream)
      responses: 2,
      code: 'OK',
    });
    const completed = (await server.metrics.streams.get()).values.find((v) => v.labels.outcome === 'completed')?.value;
    expect(completed).toBe(1);
  } finally {
    await server.stop(100);
  }
}, 120_000);
