// The k6 shim's I/O thread: performs HTTP requests (fetch) and WebSocket sessions (ws) for the
// blocked VU thread and queues every result or event on the port, then wakes the VU.
import { performance } from 'node:perf_hooks';
import { workerData } from 'node:worker_threads';
import WebSocket from 'ws';

const { port, flag } = workerData;
const sockets = new Map();

function reply(msg) {
  port.postMessage(msg);
  Atomics.add(flag, 0, 1);
  Atomics.notify(flag, 0);
}

port.on('message', async (msg) => {
  if (msg.op === 'http') {
    const t0 = performance.now();
    try {
      const res = await fetch(msg.url, { method: msg.method, headers: msg.headers, body: msg.body ?? undefined, signal: AbortSignal.timeout(msg.timeoutMs) });
      const tHeaders = performance.now();
      const body = await res.text();
      const tEnd = performance.now();
      reply({
        id: msg.id, status: res.status, headers: Object.fromEntries(res.headers), body, error: '',
        timings: { blocked: 0, connecting: 0, tls_handshaking: 0, sending: 0, waiting: tHeaders - t0, receiving: tEnd - tHeaders, duration: tEnd - t0 },
      });
    } catch (err) {
      const t = performance.now() - t0;
      reply({ id: msg.id, status: 0, headers: {}, body: null, error: String(err && err.message ? err.message : err),
        timings: { blocked: 0, connecting: 0, tls_handshaking: 0, sending: 0, waiting: 0, receiving: 0, duration: t } });
    }
  } else if (msg.op === 'ws-connect') {
    const sid = msg.sid;
    const ws = new WebSocket(msg.url, { headers: msg.headers });
    sockets.set(sid, ws);
    ws.on('upgrade', (res) => reply({ sid, kind: 'upgrade', status: res.statusCode }));
    ws.on('open', () => reply({ sid, kind: 'open' }));
    ws.on('message', (data, isBinary) => reply({ sid, kind: isBinary ? 'binaryMessage' : 'message', data: String(data) }));
    ws.on('error', (err) => reply({ sid, kind: 'error', error: err.message }));
    ws.on('close', (code) => {
      sockets.delete(sid);
      reply({ sid, kind: 'close', code });
    });
  } else if (msg.op === 'ws-send') {
    sockets.get(msg.sid)?.send(msg.data);
  } else if (msg.op === 'ws-close') {
    sockets.get(msg.sid)?.close(msg.code ?? 1000);
  }
});
