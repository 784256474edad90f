// Loaded into a `webhook-gateway start` under test with NODE_OPTIONS=--require: the process sends itself SIGINT (a
// Ctrl-C) as soon as it writes a line of stdout that matches SIGINT_AT_LINE (a regular expression), once. Test code
// only: the gateway knows nothing of it.
const pattern = process.env.SIGINT_AT_LINE;
if (pattern) {
  const matches = new RegExp(pattern);
  const write = process.stdout.write;
  let sent = false;
  process.stdout.write = function (chunk, ...rest) {
    const result = write.call(this, chunk, ...rest);
    if (!sent && matches.test(String(chunk))) {
      sent = true;
      process.kill(process.pid, 'SIGINT');
    }
    return result;
  };
}
