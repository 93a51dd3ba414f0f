'use strict';
// One registry of things to undo (child services, databases, buckets), run in reverse order when a
// benchmark ends, fails, or the user presses Ctrl-C, so a run never leaves backends behind.

const pending = [];
let signalsHooked = false;

/** Registers `undo`; returns a function that runs it now (once) and unregisters it. */
function defer(label, undo) {
  hookSignals();
  let done;
  const entry = {
    label,
    run: () => (done ??= Promise.resolve().then(undo).catch((e) => console.warn(`cleanup of ${label} failed: ${e.message}`))),
  };
  pending.push(entry);
  return () => {
    const i = pending.indexOf(entry);
    if (i >= 0) pending.splice(i, 1);
    return entry.run();
  };
}

/** Undoes everything registered since `mark` (default: everything), newest first. */
async function undoAll(mark = 0) {
  while (pending.length > mark) await pending.pop().run();
}

function mark() {
  return pending.length;
}

/** Runs `work` and undoes whatever it registered, whether it succeeded or not. */
async function scoped(work) {
  const start = mark();
  try {
    return await work();
  } finally {
    await undoAll(start);
  }
}

function hookSignals() {
  if (signalsHooked) return;
  signalsHooked = true;
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.once(signal, () => {
      console.error(`\n${signal}: cleaning up ${pending.length} resource(s)…`);
      undoAll().finally(() => process.exit(130));
    });
  }
}

module.exports = { defer, scoped, undoAll };
