import { Ajv, type ErrorObject } from 'ajv'
import type { Problem } from './errors.js'
import { configSchema } from './schema.js'
import { didYouMean } from './suggest.js'

/**
 * An ajv that knows the schema's own keywords. The file's (`fill`) fills in defaults and coerces; the plugin's leaves
 * the options it is given as they are, so `coerce` is only an annotation there.
 */
export function schemaAjv (fill: boolean): Ajv {
  const ajv = new Ajv({ allErrors: true, useDefaults: fill, verbose: true, strictTypes: false })
  // The schema's own coercion, and the only one: ajv's `coerceTypes` would apply to every typed value, so a quoted
  // `timeout: "100"` would pass unnoticed. Runs before `anyOf`, which then checks the converted value.
  ajv.addKeyword(!fill
    ? { keyword: 'coerce', schemaType: 'string' }
    : {
        keyword: 'coerce',
        schemaType: 'string',
        modifying: true,
        before: 'anyOf',
        validate (to: 'integer' | 'string', data: unknown, _schema: unknown, context?: { parentData: Record<string | number, unknown>, parentDataProperty: string | number }) {
          let value = data
          if (to === 'integer' && typeof data === 'string' && /^\d+$/.test(data)) value = Number(data)
          if (to === 'string' && (typeof data === 'number' || typeof data === 'boolean')) value = String(data)
          // ajv calls keywords of properties and items with their parent; `coerce` is only written on such values.
          if (context !== undefined) context.parentData[context.parentDataProperty] = value
          return true
        }
      })
  // An annotation: which values --print-config and GET /config hide (redact.ts).
  ajv.addKeyword({ keyword: 'secret', schemaType: 'string' })
  return ajv
}

const validateSchema = schemaAjv(true).compile(configSchema)

/** Checks a parsed file against the schema, filling in defaults and coercing where the schema says; [] when valid. */
export function validateConfig (data: unknown): Problem[] {
  if (validateSchema(data)) return []
  return problemsOf(validateSchema.errors ?? [], data)
}

/** ajv's errors as problems, one per thing wrong, in the words the file and the plugin both use. */
export function problemsOf (errors: ErrorObject[], data: unknown): Problem[] {
  return reported(errors).map((error) => describe(error, data))
}

// An `anyOf` fails with the errors of every branch. When exactly one branch is an object or a list of the value's
// type, its own errors say what is wrong inside; otherwise one line says what the value may be.
function reported (errors: ErrorObject[]): ErrorObject[] {
  const dropped = new Set<ErrorObject>()
  const anyOfs = errors.filter((error) => error.keyword === 'anyOf').sort((a, b) => a.schemaPath.length - b.schemaPath.length)
  for (const anyOf of anyOfs) {
    if (dropped.has(anyOf)) continue
    const branches = anyOf.schema as Array<{ type?: string }>
    // Items of one list share schema paths: an error is this anyOf's when it is also about this value.
    const within = errors.filter((error) => error.schemaPath.startsWith(`${anyOf.schemaPath}/`) &&
      (error.instancePath === anyOf.instancePath || error.instancePath.startsWith(`${anyOf.instancePath}/`)))
    let matching = branches.map((_, index) => index).filter((index) => !excluded(`${anyOf.schemaPath}/${index}`, branches[index] as Branch, anyOf.instancePath, within))
    // Of several objects ({ header }, { cookie }), the one with the value's key is the value's.
    const keyed = matching.filter((index) => !within.some((error) => error.instancePath === anyOf.instancePath &&
      error.keyword === 'additionalProperties' && error.schemaPath === `${anyOf.schemaPath}/${index}/additionalProperties`))
    if (matching.length > 1 && keyed.length === 1) matching = keyed
    const structural = matching.length === 1 && /^(object|array)$/.test(String(branches[matching[0]].type))
    const kept = structural ? `${anyOf.schemaPath}/${matching[0]}/` : undefined
    for (const error of within) {
      if (kept === undefined || !error.schemaPath.startsWith(kept)) dropped.add(error)
    }
    if (structural) dropped.add(anyOf)
  }
  return errors.filter((error) => !dropped.has(error))
}

interface Branch { type?: string, anyOf?: Branch[] }

// A branch is not the value's when it fails on its type (or const, enum), or is an anyOf none of whose own branches is.
function excluded (schemaPath: string, branch: Branch, instancePath: string, errors: ErrorObject[]): boolean {
  if (errors.some((error) => error.instancePath === instancePath && /^(type|const|enum)$/.test(error.keyword) &&
    error.schemaPath === `${schemaPath}/${error.keyword}`)) return true
  return branch.anyOf !== undefined && branch.anyOf.every((inner, index) => excluded(`${schemaPath}/anyOf/${index}`, inner, instancePath, errors))
}

function describe (error: ErrorObject, root: unknown): Problem {
  const path = pathOf(error.instancePath, root)
  const got = `, got ${show(error.data)}`
  const { params } = error
  // A value's own title says what it must be better than its bounds do ("a positive integer", not ">= 1").
  const title = (error.parentSchema as { title?: string } | undefined)?.title
  if (title !== undefined && error.schemaPath !== '#/type' && /^(type|minimum|maximum|exclusiveMinimum|pattern|minLength)$/.test(error.keyword)) return { path, message: `must be ${title}${got}` }
  switch (error.keyword) {
    case 'additionalProperties': {
      const known = Object.keys((error.parentSchema?.properties ?? {}) as object)
      const unknown = path[0] === 'pools' && path.length >= 2 ? 'unknown option' : 'unknown key'
      return { path: [...path, params.additionalProperty], message: `${unknown}${didYouMean(String(params.additionalProperty), known)}`, unknownKey: true }
    }
    case 'required':
      return { path: [...path, params.missingProperty], message: 'is required' }
    case 'type':
      return { path, message: `must be ${article(params.type)}${got}` }
    case 'anyOf':
      return { path, message: `must be ${error.parentSchema?.title as string}${got}` }
    case 'enum':
      return { path, message: `must be one of ${(params.allowedValues as unknown[]).map((value) => JSON.stringify(value)).join(', ')}${got}` }
    case 'minItems':
    case 'minProperties':
    case 'minLength':
      return { path, message: 'must not be empty' }
    case 'pattern':
      return { path, message: `${params.pattern === '^/' ? 'must start with "/"' : `must match ${params.pattern}`}${got}` }
    default:
      // minimum, maximum, exclusiveMinimum: ajv says it well ("must be >= 1").
      return { path, message: `${error.message as string}${got}` }
  }
}

/** '/listeners/0/port' as keys: indexes of arrays as numbers, so `[0]` prints as an index and a pool "0" as a name. */
function pathOf (pointer: string, root: unknown): Array<string | number> {
  const path: Array<string | number> = []
  let value = root
  for (const segment of pointer.split('/').slice(1)) {
    const key = segment.replace(/~1/g, '/').replace(/~0/g, '~')
    const step = Array.isArray(value) ? Number(key) : key
    path.push(step)
    value = (value as Record<string | number, unknown>)[step]
  }
  return path
}

function article (type: string): string {
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`
}

function show (value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'a list'
  if (typeof value === 'object') return 'an object'
  return JSON.stringify(value)
}
