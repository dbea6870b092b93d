// Tests that need redis-server, chromium or docker-compose are skipped where the program is missing, but never under
// CI: there they fail, saying what to install. CI counts as set for any value but '', '0' and 'false', since not
// every CI service sets CI=true (issue 15 item 11).
import t from 'tap'
import { isCI, Program } from './helpers/ci.js'

t.test('CI is set by any value but unset, empty, 0 and false', async (t) => {
  for (const value of ['true', 'TRUE', '1', 'yes', 'woodpecker']) t.equal(isCI(value), true, `CI=${value}`)
  for (const value of [undefined, '', ' ', '0', 'false', 'False', ' false ']) t.equal(isCI(value), false, `CI=${JSON.stringify(value)}`)
})

t.test('a program that is missing: skipped with the reason outside CI; under CI the test runs and fails, saying what to install', async (t) => {
  const outside = new Program('redis-server', false, 'apt-get install redis-server', false)
  t.equal(outside.skip, 'redis-server is not installed (apt-get install redis-server); under CI this test fails instead')
  const underCI = new Program('redis-server', false, 'apt-get install redis-server', true)
  t.equal(underCI.skip, false, 'under CI the test is not skipped')
  t.throws(() => { underCI.require() }, { message: /^redis-server is not installed, and CI=.* means every test must run: apt-get install redis-server/ })
})

t.test('a program that is there: the test runs, in CI or not', async (t) => {
  for (const ci of [false, true]) {
    const there = new Program('chromium', true, 'apt-get install chromium', ci)
    t.equal(there.skip, false)
    t.doesNotThrow(() => { there.require() })
  }
})
