/**
 * A strict enough reading of Prometheus' text format (0.0.4) for the tests: every line a # HELP, a # TYPE or a sample
 * `name{label="value",…} number`, each family's samples after its HELP and TYPE. Throws on anything else.
 */
export interface Exposition {
  /** A sample's value by `name{label="value",…}` with the labels sorted, or by the name alone without labels. */
  samples: Map<string, number>
  types: Map<string, string>
  helps: Map<string, string>
}

// NaN in any case, as Prometheus reads it (Go's ParseFloat): prom-client writes `Nan`.
const sampleLine = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{((?:[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\]|\\.)*",?)*)\})? (-?[0-9.e+-]+|\+Inf|[Nn]a[Nn])$/

export function parseExposition (text: string): Exposition {
  const exposition: Exposition = { samples: new Map(), types: new Map(), helps: new Map() }
  let family = ''
  for (const line of text.split('\n')) {
    if (line === '') continue
    const comment = /^# (HELP|TYPE) ([a-zA-Z_:][a-zA-Z0-9_:]*) (.+)$/.exec(line)
    if (comment !== null) {
      family = comment[2];
      (comment[1] === 'HELP' ? exposition.helps : exposition.types).set(family, comment[3])
      continue
    }
    const sample = sampleLine.exec(line)
    if (sample === null) throw new Error(`not a Prometheus sample line: ${JSON.stringify(line)}`)
    if (!sample[1].startsWith(family)) throw new Error(`${sample[1]} outside its family (after ${family})`)
    const key = seriesKey(sample[1], Object.fromEntries([...(sample[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)].map((m) => [m[1], m[2]])))
    if (exposition.samples.has(key)) throw new Error(`duplicate series ${key}`)
    exposition.samples.set(key, Number(sample[3]))
  }
  return exposition
}

export function seriesKey (name: string, labels: Record<string, string> = {}): string {
  const entries = Object.entries(labels).sort(([a], [b]) => a.localeCompare(b))
  return entries.length === 0 ? name : `${name}{${entries.map(([k, v]) => `${k}="${v}"`).join(',')}}`
}

/** The value of one series, or undefined. */
export function sample (exposition: Exposition, name: string, labels: Record<string, string> = {}): number | undefined {
  return exposition.samples.get(seriesKey(name, labels))
}
