/**
 * A config file that cannot become plugin options. The message has one line per problem, each naming the file,
 * the line where the parser knows it, the key path and what was expected; `problems` holds the same lines.
 */
export class ConfigError extends Error {
  readonly code = 'FST_GOLOAD_INVALID_CONFIG'
  readonly problems: string[]

  constructor (problems: string[]) {
    super(problems.join('\n'))
    this.name = 'ConfigError'
    this.problems = problems
  }
}

/** One problem found in a file: where (a key path, and a line when known) and what. */
export interface Problem {
  path: Array<string | number>
  message: string
  /** A key the schema does not know: it says nothing of the keys beside it, which are still checked. */
  unknownKey?: true
  /** 1-based; when the parser knows it. */
  line?: number
  column?: number
}

/** `listeners[0].routes[1].pool`, `pools.api.timeout`, `pools["a b"]`. */
export function keyPath (path: Array<string | number>): string {
  let text = ''
  for (const key of path) {
    if (typeof key === 'number') text += `[${key}]`
    else if (/^[A-Za-z_$][\w$-]*$/.test(key)) text += text === '' ? key : `.${key}`
    else text += `[${JSON.stringify(key)}]`
  }
  return text
}
