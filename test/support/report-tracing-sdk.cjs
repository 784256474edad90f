// Preloaded into a spawned gateway (NODE_OPTIONS=--require) by test/local/cli/start-and-inspect.test.ts: when the
// process exits, it says whether the X-Ray SDK was ever loaded (its async hook slows every promise of the process).
process.on('exit', () => {
  const loaded = Object.keys(require.cache).some((file) => file.includes('/aws-xray-sdk-core/'));
  process.stderr.write(`\n[tracing SDK ${loaded ? 'loaded' : 'not loaded'}]\n`);
});
