// tap's coverage map (package.json "tap"."coverage-map"): which files a test file's coverage
// counts for. [] is tap's default (whatever the test loads); null counts nothing.
//
// These tests start a server or the CLI as a child process through tsx, which compiles a .ts
// file differently from the ts-node tap itself runs tests with. c8 keeps one source map per
// file for the whole run, so a child's map was applied to the other processes' counts too and
// turned src/**/*.ts into one-line files at 100 %. Their own checks still run; only their
// coverage is not counted. A new test that spawns through tsx belongs in this list.
const SPAWNS_THROUGH_TSX = new Set([
  'test/cli.test.ts',
  'test/http-server.test.ts',
  'test/load-smoke.test.ts',
  'test/memory-budget.test.ts',
  'test/persistence-kill.test.ts',
  'test/persistence-processes.test.ts',
  'test/server-lifecycle.test.ts',
]);

export default (testFile) => (SPAWNS_THROUGH_TSX.has(testFile) ? null : []);
