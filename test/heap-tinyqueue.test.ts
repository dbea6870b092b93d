// WorkerHeap relies on tinyqueue's internals for decrease-key (see lib/pool/heap.ts): the version is pinned, and a
// tinyqueue that changed what the heap relies on is refused at load rather than left to hand out the wrong worker.
import { readFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import t from 'tap'
import TinyQueue from 'tinyqueue'
import { checkTinyQueue } from '../lib/pool/heap.js'

const require = createRequire(import.meta.url)
const readJson = (path: string) => JSON.parse(readFileSync(path, 'utf8'))

t.test('tinyqueue is pinned to one exact version, the one installed', async (t) => {
  const wanted = readJson(new URL('../package.json', import.meta.url).pathname).dependencies.tinyqueue
  t.match(wanted, /^\d+\.\d+\.\d+$/, `package.json asks for an exact version, got ${wanted}`)
  t.equal(readJson(require.resolve('tinyqueue/package.json')).version, wanted, 'node_modules holds that version')
  t.doesNotThrow(checkTinyQueue, 'and it works as WorkerHeap relies on')
})

const changes: Record<string, (this: TinyQueue<unknown>, item: unknown) => void> = {
  'push sifts up without _up': function (item) {
    const { data } = this
    let pos = this.length++
    data.push(item)
    while (pos > 0 && (this as unknown as { compare: (a: unknown, b: unknown) => number }).compare(item, data[(pos - 1) >> 1]) < 0) {
      data[pos] = data[(pos - 1) >> 1]
      pos = (pos - 1) >> 1
    }
    data[pos] = item
  },
  'data was renamed': function (item) {
    (this as unknown as { heap: unknown[] }).heap.push(item)
    this.length++
  }
}

for (const [change, push] of Object.entries(changes)) {
  t.test(`a tinyqueue whose ${change} is refused at load, saying where to look`, async (t) => {
    const original = TinyQueue.prototype.push
    TinyQueue.prototype.push = push
    t.teardown(() => { TinyQueue.prototype.push = original })
    t.throws(checkTinyQueue, { message: /tinyqueue no longer works as lib\/pool\/heap\.ts relies on/ })
  })
}
