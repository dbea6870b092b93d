// tap's coverage map (package.json "tap"."coverage-map"): the files each test file's coverage counts for.
// Coverage is of lib/ alone, as tap's loader compiles it (TypeScript's compiler, source maps back to lib/*.ts):
// never example/, bench/ or test/. Child processes that run lib/ through tsx record none (see test/helpers/child.ts).
export default function coverageMap () {
  return 'lib/**/*.ts'
}
