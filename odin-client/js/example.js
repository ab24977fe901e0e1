'use strict';
// node example.js <url> <job> [token]
// Starts <job> (a path relative to the server's --root-path), prints every WATCH event as a line, then the log of
// each task; exits 0 when the run ended DONE, 1 otherwise (2 on a usage error). The token may also come from
// $ODIN_TOKEN.

const { OdinClient, OdinError } = require('./client');

function eventLine(ev) {
  const what = ev.task ? `task ${ev.task}` : ev.kind;
  return `${ev.time} #${ev.seq} ${what} ${ev.status}${ev.message ? `: ${ev.message}` : ''}`;
}

async function main([url, job, token = process.env.ODIN_TOKEN]) {
  if (!url || !job) {
    console.error('usage: node example.js <ws://host:port> <job> [token]');
    return 2;
  }
  const odin = await OdinClient.connect(url, { token });
  try {
    // Without watch, START's first OK is the run id; the END that follows it carries nothing more.
    const runId = await odin.request('START', { job, watch: false });
    console.log(`run ${runId}`);

    let runStatus = null;
    await odin.stream('WATCH', { run: runId }, (ev) => {
      console.log(eventLine(ev));
      if (ev.kind === 'run') runStatus = ev.status;
    });

    const { jobs: record } = await odin.request('DATA', { resource: runId, odin: true }); // Odin's own record
    for (const task of record.tasks) {
      console.log(`--- logs of ${task.task_id} (${task.status})`);
      await odin.stream('LOGS', { resource: task.task_id }, (text) => {
        process.stdout.write(text.endsWith('\n') || text === '' ? text : `${text}\n`);
      });
    }
    const status = record.status || runStatus;
    console.log(`run ${runId} ended ${status}${record.message ? `: ${record.message}` : ''}`);
    return status === 'DONE' ? 0 : 1;
  } finally {
    odin.close();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`error: ${err instanceof OdinError ? `${err.message} (${err.code})` : err.stack || err}`);
    process.exitCode = 1;
  },
);
