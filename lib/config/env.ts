import type { Problem } from './errors.js'

const reference = /\$\$\{|\$\{([A-Za-z_][A-Za-z0-9_]*)\}/g

/**
 * A copy of `data` with each `${NAME}` in a string value replaced by that environment variable; `$${` stands for a
 * literal `${`. Keys are left as written. A variable that is not set is a problem, named by the value's key path.
 */
export function substituteEnv (data: unknown, env: NodeJS.ProcessEnv, problems: Problem[], path: Array<string | number> = []): unknown {
  if (typeof data === 'string') {
    return data.replace(reference, (match, name: string | undefined) => {
      if (name === undefined) return '${'
      const value = env[name]
      if (value === undefined) {
        problems.push({ path, message: `environment variable ${name} is not set` })
        return match
      }
      return value
    })
  }
  if (Array.isArray(data)) return data.map((item, index) => substituteEnv(item, env, problems, [...path, index]))
  if (data !== null && typeof data === 'object') {
    return Object.fromEntries(Object.entries(data).map(([key, value]) => [key, substituteEnv(value, env, problems, [...path, key])]))
  }
  return data
}
