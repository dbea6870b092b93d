import { configSchema } from './schema.js'

/** How a secret value is hidden; written on its key in the schema as `secret`. */
export type SecretKind =
  /** The whole value (a token). */
  | 'value'
  /** The password of a URL (redis://:password@host), the rest kept: where it connects is worth seeing. */
  | 'url-password'
  /** PEM text of a private key; a file path is kept, as it only says where the key is. */
  | 'pem'

export const redacted = '<redacted>'

type SchemaNode = Record<string, unknown> & {
  secret?: SecretKind
  properties?: Record<string, SchemaNode>
  additionalProperties?: SchemaNode | boolean
  items?: SchemaNode
  anyOf?: SchemaNode[]
}

/**
 * A copy of a loaded config that can be shown (--print-config, the admin's GET /config): each value whose key the
 * schema marks `secret` is replaced by `<redacted>`. The schema says which keys are secrets, so a new one is marked
 * where it is defined, and nothing here changes.
 */
export function redactConfig<Config> (config: Config): Config {
  return walk(configSchema as unknown as SchemaNode, config) as Config
}

function walk (schema: SchemaNode, value: unknown): unknown {
  if (schema.secret !== undefined) return hide(schema.secret, value)
  if (Array.isArray(value)) {
    const items = [schema.items, ...(schema.anyOf ?? []).map((branch) => branch.items)].filter((item) => item !== undefined)
    return value.map((item) => items.reduce((shown, itemSchema) => walk(itemSchema, shown), item))
  }
  if (value !== null && typeof value === 'object') {
    // Every branch of an anyOf that describes an object (a backend is a URL or an object) has its say.
    const branches = [schema, ...(schema.anyOf ?? [])].filter((branch) => branch.properties !== undefined || typeof branch.additionalProperties === 'object')
    return Object.fromEntries(Object.entries(value).map(([key, item]) => {
      let shown = item
      for (const branch of branches) {
        const child = branch.properties?.[key] ?? (typeof branch.additionalProperties === 'object' ? branch.additionalProperties : undefined)
        if (child !== undefined) shown = walk(child, shown)
      }
      return [key, shown]
    }))
  }
  // A secret inside an anyOf branch of a plain value (tls.ca is PEM or a list of them).
  return (schema.anyOf ?? []).reduce<unknown>((shown, branch) => branch.secret === undefined ? shown : hide(branch.secret, shown), value)
}

function hide (kind: SecretKind, value: unknown): unknown {
  if (typeof value !== 'string') return value === undefined ? value : redacted
  if (kind === 'url-password') return value.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:/@]*:)[^@/]*@/i, `$1${redacted}@`)
  if (kind === 'pem') return value.includes('-----BEGIN') ? redacted : value
  return redacted
}
