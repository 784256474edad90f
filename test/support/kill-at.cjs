// A deterministic crash point for the crash tests (test/e2e/crash-points.test.ts), loaded into the gateway under test
// with NODE_OPTIONS=--require (in its worker threads too: the embedded S3's file writer). It kills the whole process
// with SIGKILL at the KILL_AT_N-th file call KILL_AT_OP (rename; link; chmod; append: fs.appendFile, the attempt log's
// lines, or fs.writeSync to a file fs.openSync opened for appending, the summary index's; write: fs.writeSync to a
// file opened with fs.openSync, the journal's lines and the embedded S3's files written aside) whose destination
// matches KILL_AT_PATH (a regular expression), KILL_AT_WHEN `before` the call or `after` it succeeded. The count is
// kept in the file KILL_AT_COUNTER (one byte per call counted), so that every thread counts the same calls. Test code
// only: the gateway knows nothing of it.
const fs = require('node:fs');

const {
  KILL_AT_OP: op,
  KILL_AT_PATH: pattern,
  KILL_AT_N: n,
  KILL_AT_WHEN: when,
  KILL_AT_COUNTER: counter,
  KILL_AT_SIGNAL: signal = 'SIGKILL',
} = process.env;
if (op && pattern && n && counter) {
  const matches = new RegExp(pattern);
  const appendFileSync = fs.appendFileSync;
  const statSync = fs.statSync;
  const fdPaths = new Map();
  // KILL_AT_SIGNAL=SIGINT stands for a Ctrl-C at that point instead (the call goes on; the handler runs after it).
  const die = () => process.kill(process.pid, signal);
  /** Whether this call is the one to kill at: counted only when its path matches. */
  const hit = (file) => {
    if (typeof file !== 'string' || !matches.test(file)) return false;
    appendFileSync(counter, '.');
    return statSync(counter).size === Number(n);
  };
  // `before`: the n-th call that matched; `after`: the n-th that matched and succeeded.
  const around = (file, call) => {
    if (when !== 'after' && hit(file)) die();
    const result = call();
    if (when === 'after' && hit(file)) die();
    return result;
  };
  if (op === 'write') {
    const openSync = fs.openSync;
    fs.openSync = function (file, ...rest) {
      const fd = openSync.call(this, file, ...rest);
      fdPaths.set(fd, String(file));
      return fd;
    };
    const writeSync = fs.writeSync;
    fs.writeSync = function (fd, ...rest) {
      return around(fdPaths.get(fd), () => writeSync.call(this, fd, ...rest));
    };
  } else {
    const name = { rename: 'rename', link: 'link', append: 'appendFile', chmod: 'chmod' }[op];
    const destination = (args) => (op === 'append' || op === 'chmod' ? args[0] : args[1]);
    const sync = fs[`${name}Sync`];
    fs[`${name}Sync`] = function (...args) {
      return around(String(destination(args)), () => sync.apply(this, args));
    };
    const callback = fs[name];
    fs[name] = function (...args) {
      const file = String(destination(args));
      if (when !== 'after' && hit(file)) die();
      const done = args.pop();
      return callback.call(this, ...args, (...result) => {
        if (when === 'after' && !result[0] && hit(file)) die();
        done(...result);
      });
    };
    const promised = fs.promises[name];
    fs.promises[name] = async function (...args) {
      const file = String(destination(args));
      if (when !== 'after' && hit(file)) die();
      const result = await promised.apply(this, args);
      if (when === 'after' && hit(file)) die();
      return result;
    };
    if (op === 'append') {
      // A line appended with fs.writeSync to a file fs.openSync opened for appending (appendLineNamed, by the file
      // writer's thread: the summary index's saved entries).
      const openSync = fs.openSync;
      fs.openSync = function (file, flags, ...rest) {
        const fd = openSync.call(this, file, flags, ...rest);
        if (typeof flags === 'string' && flags.startsWith('a')) fdPaths.set(fd, String(file));
        else fdPaths.delete(fd);
        return fd;
      };
      const writeSync = fs.writeSync;
      fs.writeSync = function (fd, ...rest) {
        const file = fdPaths.get(fd);
        return file === undefined
          ? writeSync.call(this, fd, ...rest)
          : around(file, () => writeSync.call(this, fd, ...rest));
      };
    }
  }
  require('node:module').syncBuiltinESMExports();
}
