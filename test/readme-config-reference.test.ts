// The README is the config file's reference: every key the schema takes is documented there, so the two cannot
// drift apart. Pool keys are rows of the Options table, route keys rows of the Routes table (a route's `path` is
// the plugin's `prefix`), listener and log keys appear in the config file section's sample.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { configSchema, poolSchema } from '../lib/config/schema.js'

const readme = readFileSync(new URL('../README.md', import.meta.url), 'utf8')

/** The option names of the first table after a heading: the first cell of each row, without backticks. */
function tableKeys (heading: string): Set<string> {
  const lines = readme.slice(readme.indexOf(`\n${heading}\n`) + heading.length + 2).split('\n')
  const start = lines.findIndex((line) => line.startsWith('|'))
  const end = lines.findIndex((line, i) => i > start && !line.startsWith('|'))
  return new Set(lines.slice(start, end).flatMap((row) => /^\| `([^`]+)`/.exec(row)?.[1] ?? []))
}

t.test('every pool key of the schema is a row of the README\'s Options table', async (t) => {
  const documented = tableKeys('## Options')
  for (const key of Object.keys(poolSchema.properties)) t.ok(documented.has(key), `pools.*.${key} is in the Options table`)
})

t.test('every route key of the schema is a row of the README\'s Routes table', async (t) => {
  const documented = tableKeys('### Routes')
  const route = configSchema.properties.listeners.items.properties.routes.items
  for (const key of Object.keys(route.properties)) {
    t.ok(documented.has(key === 'path' ? 'prefix' : key), `listeners[].routes[].${key} is in the Routes table`)
  }
})

t.test('every tls.acme key of the schema is a row of the README\'s Automatic certificates table', async (t) => {
  const documented = tableKeys('### Automatic certificates')
  const acme = configSchema.properties.listeners.items.properties.tls.properties.acme
  for (const key of Object.keys(acme.properties)) t.ok(documented.has(key), `listeners[].tls.acme.${key} is in the Automatic certificates table`)
})

t.test('listener and log keys appear in the config file sample', async (t) => {
  const sample = readme.slice(readme.indexOf('### Config file'), readme.indexOf('## Development'))
  for (const key of [...Object.keys(configSchema.properties.listeners.items.properties), ...Object.keys(configSchema.properties), 'level']) {
    t.match(sample, new RegExp(`\\b${key}:`), `${key} is in the sample`)
  }
})
