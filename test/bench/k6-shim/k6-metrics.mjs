// k6/metrics emulation: Trend, Rate, Counter, Gauge record into the shim's registry.
import { addSample, declareMetric, state } from './state.mjs';

class Metric {
  constructor(type, name, isTime) {
    if (state.phase !== 'init') throw new Error('k6 shim: metrics must be declared in the init context');
    this.name = name;
    this.type = type;
    declareMetric(name, type, isTime);
  }

  add(value, tags) {
    if (state.phase === 'init') throw new Error('k6 shim: metric samples cannot be added in the init context');
    addSample(this.name, this.type, value, tags);
    return true;
  }
}

export class Trend extends Metric {
  constructor(name, isTime = false) {
    super('trend', name, isTime);
  }
}
export class Rate extends Metric {
  constructor(name) {
    super('rate', name);
  }
}
export class Counter extends Metric {
  constructor(name) {
    super('counter', name);
  }
}
export class Gauge extends Metric {
  constructor(name, isTime = false) {
    super('gauge', name, isTime);
  }
}
export default { Trend, Rate, Counter, Gauge };
