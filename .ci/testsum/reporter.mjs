// A node:test reporter that writes one result record per test, in the JSON-lines
// shape of testsum's Go runs (main.go, Record): {run, test, result, reason}. The run
// is $TESTSUM_RUN. A test is every test() and subtest (t.test), parents included;
// describe() suites are groupings and are not counted. A todo test never fails the
// run: a failing one is listed as skipped.
//
//   node --test --test-reporter=spec --test-reporter-destination=stdout \
//     --test-reporter=/abs/.ci/testsum/reporter.mjs --test-reporter-destination=out.jsonl FILES
import { relative } from 'node:path';

export default async function* testsum(source) {
  const run = process.env.TESTSUM_RUN || 'node --test';
  const stacks = new Map(); // file -> names of the tests started, by nesting
  for await (const { type, data } of source) {
    if (type === 'test:start') {
      const s = stacks.get(data.file) || [];
      s.length = data.nesting;
      s.push(data.name);
      stacks.set(data.file, s);
      continue;
    }
    if (type !== 'test:pass' && type !== 'test:fail') continue;
    if (data.details?.type === 'suite') continue;
    const parents = (stacks.get(data.file) || []).slice(0, data.nesting);
    const file = data.file ? relative(process.cwd(), data.file) : '';
    const test = [file, ...parents, data.name].filter(Boolean).join(' > ');
    let result = type === 'test:pass' ? 'pass' : 'fail';
    let reason;
    if (data.skip !== undefined && data.skip !== false) {
      result = 'skip';
      reason = typeof data.skip === 'string' ? data.skip : 'no reason given';
    } else if (data.todo !== undefined && data.todo !== false && result === 'fail') {
      result = 'skip';
      reason = 'todo' + (typeof data.todo === 'string' ? ': ' + data.todo : '');
    }
    yield JSON.stringify(reason ? { run, test, result, reason } : { run, test, result }) + '\n';
  }
}
