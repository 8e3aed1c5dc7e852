// Module resolution hook of the k6 shim: `k6`, `k6/http`, `k6/ws` and `k6/metrics` resolve to
// the emulations in this folder; any other k6 module is refused by name.
const MODULES = { k6: 'k6.mjs', 'k6/http': 'k6-http.mjs', 'k6/ws': 'k6-ws.mjs', 'k6/metrics': 'k6-metrics.mjs' };

export async function resolve(specifier, context, next) {
  if (Object.hasOwn(MODULES, specifier)) return { url: new URL(MODULES[specifier], import.meta.url).href, shortCircuit: true };
  if (specifier === 'k6' || specifier.startsWith('k6/')) throw new Error(`k6 shim: module ${specifier} is not emulated`);
  return next(specifier, context);
}
