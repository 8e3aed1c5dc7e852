// Checks a k6 script's `options` against k6's documented schema: executors and their fields,
// durations, exec functions, and thresholds (metric names, tag filters, aggregation methods
// valid for the metric's type). Returns a list of problems (empty: valid).

export const BUILTIN_METRICS = {
  vus: 'gauge', vus_max: 'gauge', iterations: 'counter', iteration_duration: 'trend', dropped_iterations: 'counter',
  data_received: 'counter', data_sent: 'counter', checks: 'rate',
  http_reqs: 'counter', http_req_blocked: 'trend', http_req_connecting: 'trend', http_req_tls_handshaking: 'trend',
  http_req_sending: 'trend', http_req_waiting: 'trend', http_req_receiving: 'trend', http_req_duration: 'trend', http_req_failed: 'rate',
  ws_connecting: 'trend', ws_msgs_received: 'counter', ws_msgs_sent: 'counter', ws_ping: 'trend', ws_session_duration: 'trend', ws_sessions: 'counter',
};

const COMMON = ['executor', 'startTime', 'gracefulStop', 'exec', 'env', 'tags'];
const EXECUTORS = {
  'shared-iterations': { fields: ['vus', 'iterations', 'maxDuration'], required: [] },
  'per-vu-iterations': { fields: ['vus', 'iterations', 'maxDuration'], required: [] },
  'constant-vus': { fields: ['vus', 'duration'], required: ['duration'] },
  'ramping-vus': { fields: ['startVUs', 'stages', 'gracefulRampDown'], required: ['stages'] },
  'constant-arrival-rate': { fields: ['duration', 'rate', 'timeUnit', 'preAllocatedVUs', 'maxVUs'], required: ['duration', 'rate', 'preAllocatedVUs'] },
  'ramping-arrival-rate': { fields: ['startRate', 'timeUnit', 'stages', 'preAllocatedVUs', 'maxVUs'], required: ['stages', 'preAllocatedVUs'] },
  'externally-controlled': { fields: ['vus', 'maxVUs', 'duration'], required: ['duration'] },
};
const DURATION_FIELDS = ['startTime', 'gracefulStop', 'maxDuration', 'duration', 'timeUnit', 'gracefulRampDown'];
const INT_FIELDS = ['vus', 'iterations', 'startVUs', 'rate', 'startRate', 'preAllocatedVUs', 'maxVUs'];
const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;
const EXPR = /^(avg|min|max|med|count|rate|value|p\(\d+(\.\d+)?\))\s*(<|<=|>|>=|==|===|!=)\s*-?\d+(\.\d+)?$/;
const AGGREGATIONS = {
  counter: ['count', 'rate'],
  gauge: ['value'],
  rate: ['rate'],
  trend: ['avg', 'min', 'max', 'med', 'p'],
};

export function parseThresholdKey(key) {
  const m = /^([a-zA-Z_][a-zA-Z0-9_]*)(\{([^{}]*)\})?$/.exec(key);
  if (!m) return null;
  const tags = {};
  if (m[3] !== undefined) {
    for (const part of m[3].split(',')) {
      const kv = /^\s*([^:\s]+)\s*:\s*(.+?)\s*$/.exec(part);
      if (!kv) return null;
      tags[kv[1]] = kv[2];
    }
  }
  return { metric: m[1], tags };
}

export function parseExpression(expr) {
  const m = EXPR.exec(expr.trim());
  if (!m) return null;
  const agg = m[1].startsWith('p(') ? 'p' : m[1];
  const pct = agg === 'p' ? Number(m[1].slice(2, -1)) : null;
  const value = Number(expr.trim().split(/(<=|>=|===|==|!=|<|>)/).at(-1));
  return { agg, pct, op: m[3], value };
}

/** options: the script's export; exportsObj: the module namespace; metrics: name -> { type } of every declared metric */
export function validateOptions(options, exportsObj, metrics) {
  const problems = [];
  if (!options || typeof options !== 'object') return ['the script exports no options object'];
  const scenarios = options.scenarios ?? {};
  if (Object.keys(scenarios).length === 0) problems.push('no scenarios');
  for (const [name, sc] of Object.entries(scenarios)) {
    const ex = EXECUTORS[sc.executor];
    if (!ex) {
      problems.push(`scenario ${name}: unknown executor ${sc.executor}`);
      continue;
    }
    for (const k of Object.keys(sc)) if (!COMMON.includes(k) && !ex.fields.includes(k)) problems.push(`scenario ${name}: ${sc.executor} has no field ${k}`);
    for (const k of ex.required) if (sc[k] === undefined) problems.push(`scenario ${name}: ${sc.executor} needs ${k}`);
    for (const k of DURATION_FIELDS) if (sc[k] !== undefined && !DURATION.test(String(sc[k]))) problems.push(`scenario ${name}: ${k} is not a duration: ${sc[k]}`);
    for (const k of INT_FIELDS) if (sc[k] !== undefined && !(Number.isInteger(sc[k]) && sc[k] >= 0)) problems.push(`scenario ${name}: ${k} must be a whole number, got ${sc[k]}`);
    if (sc.maxVUs !== undefined && sc.preAllocatedVUs !== undefined && sc.maxVUs < sc.preAllocatedVUs) problems.push(`scenario ${name}: maxVUs < preAllocatedVUs`);
    if (sc.stages !== undefined) {
      if (!Array.isArray(sc.stages) || sc.stages.length === 0) problems.push(`scenario ${name}: stages must be a non-empty array`);
      else sc.stages.forEach((st, i) => {
        if (!DURATION.test(String(st.duration))) problems.push(`scenario ${name}: stage ${i} duration ${st.duration}`);
        if (!(Number.isInteger(st.target) && st.target >= 0)) problems.push(`scenario ${name}: stage ${i} target ${st.target}`);
        for (const k of Object.keys(st)) if (k !== 'duration' && k !== 'target') problems.push(`scenario ${name}: stage ${i} has no field ${k}`);
      });
    }
    const exec = sc.exec ?? 'default';
    if (typeof exportsObj[exec] !== 'function') problems.push(`scenario ${name}: exec ${exec} is not an exported function`);
  }
  const thresholds = options.thresholds ?? {};
  if (Object.keys(thresholds).length === 0) problems.push('no thresholds');
  for (const [key, list] of Object.entries(thresholds)) {
    const k = parseThresholdKey(key);
    if (!k) {
      problems.push(`threshold ${key}: not a metric name with optional {tag:value} filters`);
      continue;
    }
    const type = BUILTIN_METRICS[k.metric] ?? metrics.get(k.metric)?.type;
    if (!type) problems.push(`threshold ${key}: no metric ${k.metric} (neither built in nor declared by the script)`);
    if (k.tags.scenario !== undefined && !(k.tags.scenario in scenarios)) problems.push(`threshold ${key}: no scenario ${k.tags.scenario}`);
    if (!Array.isArray(list) || list.length === 0) {
      problems.push(`threshold ${key}: needs an array of expressions`);
      continue;
    }
    for (const item of list) {
      const expr = typeof item === 'string' ? item : item && item.threshold;
      const e = typeof expr === 'string' ? parseExpression(expr) : null;
      if (!e) problems.push(`threshold ${key}: cannot parse ${JSON.stringify(item)}`);
      else if (type && !AGGREGATIONS[type].includes(e.agg)) problems.push(`threshold ${key}: ${e.agg} does not apply to a ${type}`);
    }
  }
  return problems;
}

function percentile(sorted, p) {
  if (sorted.length === 0) return NaN;
  const rank = (p / 100) * (sorted.length - 1);
  const lo = Math.floor(rank);
  const hi = Math.min(lo + 1, sorted.length - 1);
  return sorted[lo] + (sorted[hi] - sorted[lo]) * (rank - lo);
}

const COMPARE = { '<': (a, b) => a < b, '<=': (a, b) => a <= b, '>': (a, b) => a > b, '>=': (a, b) => a >= b, '==': (a, b) => a === b, '===': (a, b) => a === b, '!=': (a, b) => a !== b };

/** Evaluates every threshold on the recorded samples: [{ key, expr, value, pass, samples }]. */
export function evaluateThresholds(thresholds, metrics, elapsedS) {
  const out = [];
  for (const [key, list] of Object.entries(thresholds ?? {})) {
    const k = parseThresholdKey(key);
    const m = metrics.get(k.metric);
    const samples = (m ? m.samples : []).filter((s) => Object.entries(k.tags).every(([t, v]) => s.tags[t] === v)).map((s) => s.value);
    for (const item of list) {
      const expr = typeof item === 'string' ? item : item.threshold;
      const e = parseExpression(expr);
      const sorted = [...samples].sort((a, b) => a - b);
      const sum = samples.reduce((a, b) => a + b, 0);
      let value;
      if (e.agg === 'count') value = sum;
      else if (e.agg === 'rate') value = m && m.type === 'counter' ? sum / elapsedS : samples.length ? sum / samples.length : 0;
      else if (e.agg === 'value') value = samples.at(-1) ?? 0;
      else if (e.agg === 'avg') value = samples.length ? sum / samples.length : 0;
      else if (e.agg === 'min') value = sorted[0] ?? 0;
      else if (e.agg === 'max') value = sorted.at(-1) ?? 0;
      else if (e.agg === 'med') value = percentile(sorted, 50);
      else value = percentile(sorted, e.pct);
      out.push({ key, expr, value, pass: samples.length > 0 && COMPARE[e.op](value, e.value), samples: samples.length });
    }
  }
  return out;
}
