import '../local/node-warnings.ts';

// Tests never reach real AWS: fake credentials and a fixed region; endpoints are set per test to local servers.
process.env.AWS_ACCESS_KEY_ID = 'test';
process.env.AWS_SECRET_ACCESS_KEY = 'test';
process.env.AWS_REGION = 'us-east-1';
process.env.AWS_EC2_METADATA_DISABLED = 'true';
process.env.POWERTOOLS_TRACE_ENABLED = 'false';
delete process.env.AWS_PROFILE;

// The handlers' Powertools log and EMF lines are asserted through captureJsonLines(); keep them out of the test
// output unless TEST_SHOW_HANDLER_LOGS=1.
if (!process.env.TEST_SHOW_HANDLER_LOGS) {
  for (const stream of [process.stdout, process.stderr]) {
    const write = stream.write.bind(stream) as (chunk: unknown, ...rest: unknown[]) => boolean;
    stream.write = ((chunk: unknown, ...rest: unknown[]) => {
      const text = typeof chunk === 'string' ? chunk : Buffer.isBuffer(chunk) ? chunk.toString('utf8') : '';
      if (text.startsWith('{"level":') || text.startsWith('{"_aws":')) return true;
      return write(chunk, ...rest);
    }) as typeof stream.write;
  }
}
