// k6/ws emulation: ws.connect(url, params, callback) blocks in an event loop that dispatches the
// socket's events (open, message, error, close) and its setTimeout/setInterval timers, and
// returns once the socket has closed, with the upgrade's status. Records the ws_* metrics.
import { addSample, nextMessage, post, state } from './state.mjs';

let seq = 0;

export function connect(url, params, callback) {
  if (state.phase === 'init') throw new Error('k6 shim: WebSocket connections are not allowed in the init context');
  if (typeof params === 'function') {
    callback = params;
    params = null;
  }
  params = params ?? {};
  const sid = ++seq;
  const handlers = {};
  const timers = [];
  let closed = false;
  let closing = false;
  let status = 0;
  const t0 = Date.now();
  const tags = { url, ...(params.tags ?? {}) };
  const emit = (ev, ...args) => (handlers[ev] ?? []).forEach((fn) => fn(...args));
  const socket = {
    on(ev, fn) {
      (handlers[ev] ??= []).push(fn);
    },
    send(data) {
      if (closed) return;
      addSample('ws_msgs_sent', 'counter', 1, tags);
      post({ op: 'ws-send', sid, data: String(data) });
    },
    close(code) {
      if (closing || closed) return;
      closing = true;
      post({ op: 'ws-close', sid, code });
    },
    ping() {},
    setTimeout(fn, ms) {
      timers.push({ at: Date.now() + ms, fn, every: 0 });
    },
    setInterval(fn, ms) {
      timers.push({ at: Date.now() + ms, fn, every: ms });
    },
  };
  post({ op: 'ws-connect', sid, url, headers: params.headers ?? {} });
  callback(socket);
  const deadline = Date.now() + 600_000;
  while (!closed) {
    if (Date.now() > deadline) throw new Error('k6 shim: a WebSocket session ran for 10 minutes');
    timers.sort((a, b) => a.at - b.at);
    const due = timers[0];
    if (due && due.at <= Date.now()) {
      timers.shift();
      if (due.every) timers.push({ ...due, at: due.at + due.every });
      due.fn();
      continue;
    }
    const msg = nextMessage(due ? due.at - Date.now() : 1000);
    if (!msg) continue;
    if (msg.sid !== sid) continue;
    if (msg.kind === 'upgrade') {
      status = msg.status;
      addSample('ws_connecting', 'trend', Date.now() - t0, tags, true);
    } else if (msg.kind === 'open') emit('open');
    else if (msg.kind === 'message') {
      addSample('ws_msgs_received', 'counter', 1, tags);
      emit('message', msg.data);
    } else if (msg.kind === 'binaryMessage') emit('binaryMessage', msg.data);
    else if (msg.kind === 'error') {
      const m = /Unexpected server response: (\d+)/.exec(msg.error);
      if (m && status === 0) status = Number(m[1]);
      emit('error', { error: () => msg.error });
    } else if (msg.kind === 'close') {
      closed = true;
      emit('close', msg.code);
    }
  }
  addSample('ws_sessions', 'counter', 1, tags);
  addSample('ws_session_duration', 'trend', Date.now() - t0, tags, true);
  return { status, url, headers: {}, body: null, error: status === 101 ? '' : `status ${status}` };
}

export default { connect };
