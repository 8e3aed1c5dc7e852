// The engine's thread. onnxruntime-node's session.run is synchronous native work, so the
// whole engine (KV pool, scheduler, samplers, detokenizer) lives here and the main thread only
// exchanges small messages with it.
import { parentPort, workerData } from 'node:worker_threads';
import type { EngineConfig } from './config.js';
import type { FromEngine, ToEngine } from './protocol.js';
import { createEngine } from './setup.js';

const port = parentPort!;
const post = (msg: FromEngine) => port.postMessage(msg);

try {
  const { engine, info } = await createEngine(workerData as EngineConfig, (r) =>
    post({ type: 'step', events: r.events, timing: r.timing, stats: r.stats, heartbeat: Date.now() }),
  );
  port.on('message', (msg: ToEngine) => {
    if (msg.type === 'submit') engine.submit(msg.request);
    else if (msg.type === 'cancel') engine.cancel(msg.id);
    else if (msg.type === 'stop') engine.stop();
  });
  // Liveness while idle: the loop also posts a heartbeat when it wakes up with nothing to do.
  const beat = setInterval(() => post({ type: 'heartbeat', at: Date.now() - (performance.now() - engine.heartbeat), stats: engine.stats }), 1000);
  post({ type: 'ready', info });
  await engine.run();
  clearInterval(beat);
  await engine.release();
  post({ type: 'stopped' });
} catch (err) {
  post({ type: 'fatal', message: err instanceof Error ? err.message : String(err) });
}
