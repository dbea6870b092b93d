import { Type } from '@sinclair/typebox'
import type { ValidateFunction } from 'ajv'
import { keyPath, type Problem } from './config/errors.js'
import { mirrorSchema, poolSchema, rateLimitSchema, routePrefixSchema, routeSchemaKeys, splitSchema, tlsSchema, tracingSchema } from './config/schema.js'
import { problemsOf, schemaAjv } from './config/validate.js'
import { InvalidOptionError } from './errors.js'

// The plugin's options are checked with the file's schema (lib/config/schema.ts), so both say the same thing the
// same way. Two differences, both here: the keys a registration has beside a pool's, and the values only a program
// can give (functions, Infinity, Buffers), which a file cannot hold; what a schema cannot say stays in options.ts.

/** A route's own options (normalizeRoute checks them), and those Fastify itself reads from any register() call. */
export const routeKeys = ['host', 'prefix', 'rewritePrefix', 'methods', 'headers', 'preserveHost', 'websocket', 'rateLimit', 'mirror', 'accessLog', 'metrics', 'tracing', 'logLevel', 'logSerializers']

const registration = Type.Object({
  ...poolSchema.properties,
  name: Type.Optional(Type.String({ minLength: 1, title: 'a non-empty string' })),
  ...Object.fromEntries(routeKeys.map((key) => [key, Type.Optional(Type.Unknown())]))
}, { additionalProperties: false })

// A route's keys, whether the registration has a pool of its own or names one (`pool`); the pool's keys are
// checkRegistration's, so others pass here.
const route = Type.Object({
  ...routeSchemaKeys,
  // What a file cannot hold, a program can: a RegExp (left out of the value the schema sees, see checkRoute).
  host: Type.Optional(Type.String({ ...routeSchemaKeys.host, title: 'a host name, a *.wildcard one, or a RegExp' })),
  headers: Type.Optional(Type.Record(Type.String(), Type.Unsafe<string>({ title: 'a string or a RegExp', anyOf: [{ type: 'string' }, { type: 'number' }, { type: 'boolean' }] }))),
  prefix: Type.Optional(routePrefixSchema),
  pool: Type.Optional(Type.String({ minLength: 1, title: 'the name of a pool registered before' }))
})

const ajv = schemaAjv(false)
const validateRegistration = ajv.compile(registration)
const validateRoute = ajv.compile(route)
const validateBackend = ajv.compile(poolSchema.properties.backends.items)
const validateRateLimit = ajv.compile(rateLimitSchema)
// A program gives PEM text (a string or a Buffer), never a file's path.
const pemText = (header: string) => Type.String({ minLength: 1, title: `PEM text (a string or Buffer with -----BEGIN ${header}-----)` })
const validateTls = ajv.compile(Type.Object({
  ...tlsSchema.properties,
  ca: Type.Optional(Type.Union([pemText('CERTIFICATE'), Type.Array(pemText('CERTIFICATE'), { minItems: 1 })], { title: 'PEM text (a string or Buffer with -----BEGIN CERTIFICATE-----) or an array of them' })),
  cert: Type.Optional(pemText('CERTIFICATE')),
  key: Type.Optional(pemText('... PRIVATE KEY'))
}, { additionalProperties: false }))
const validateMirror = ajv.compile(mirrorSchema)
const validateTracing = ajv.compile(tracingSchema)
const validateSplit = ajv.compile(splitSchema)

type Options = Record<string, unknown>

/**
 * The options as the schema can judge them: each value only the plugin takes is left out of this copy once it is
 * known to be the kind the plugin takes; anything else stays for the schema to judge.
 */
function schemaView (options: Options): Options {
  const view: Options = { ...options }
  // Infinity: a limit left open (as the default is), or a hash key that never leaves its backend; JSON cannot write it.
  for (const key of ['connections', 'maxPending', 'balanceFactor']) if (view[key] === Infinity) delete view[key]
  // Beside discovery, backends may be empty (normalizeOptions says when they may not).
  if (Array.isArray(view.backends) && view.backends.length === 0) delete view.backends
  if (Array.isArray(view.backends)) view.backends = view.backends.map((backend, index) => backendView(backend, `backends[${index}]`))
  // TLS options may be Buffers: normalizeTls checks them whole.
  delete view.tls
  return view
}

function backendView (backend: unknown, key: string): unknown {
  if (backend === null || typeof backend !== 'object' || Array.isArray(backend)) return backend
  const view: Options = { ...backend }
  if (view.maxPending === Infinity) delete view.maxPending
  delete view.tls
  const resolve = view.resolve
  if (resolve !== null && typeof resolve === 'object' && 'lookup' in resolve) {
    // A resolver of the program's own, e.g. a service registry's.
    if (typeof resolve.lookup !== 'function') throw new InvalidOptionError(`${key}.resolve.lookup must be a function returning a promise of addresses`)
    const { lookup, ...rest } = resolve
    view.resolve = rest
  }
  return view
}

/** Throws InvalidOptionError naming every key the schema finds wrong, unknown keys first (a misspelt key explains a missing one). */
export function checkRegistration (options: Options): void {
  const view = schemaView(options)
  judge(validateRegistration, view, '')
}

/**
 * A registration's route keys, with the file's schema: a RegExp host, and RegExp header values, are the program's
 * own (matched as they are); rateLimit is checkRateLimit's, metrics (a Registry) normalizeRoute's.
 */
export function checkRoute (options: Options): void {
  const view: Options = {}
  for (const key of Object.keys(route.properties)) if (key !== 'rateLimit' && options[key] !== undefined) view[key] = options[key]
  if (view.host instanceof RegExp) delete view.host
  const { headers } = view
  if (headers !== null && typeof headers === 'object' && !Array.isArray(headers)) {
    view.headers = Object.fromEntries(Object.entries(headers).filter(([, value]) => !(value instanceof RegExp)))
  }
  judge(validateRoute, view, '')
}

/** A route's rateLimit: a keyGenerator, and an allowList that is a function, are the program's own. */
export function checkRateLimit (options: unknown): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionError('rateLimit must be an object like { max: 100, timeWindow: \'1 minute\' }')
  }
  const view: Options = { ...options }
  if ('keyGenerator' in view) {
    if (typeof view.keyGenerator !== 'function') throw new InvalidOptionError('rateLimit.keyGenerator must be a function of the request returning its key')
    delete view.keyGenerator
  }
  if (typeof view.allowList === 'function') delete view.allowList
  else if (view.allowList !== undefined && !Array.isArray(view.allowList)) {
    throw new InvalidOptionError('rateLimit.allowList must be an array of IP addresses or a function of the request and its key')
  }
  judge(validateRateLimit, view, 'rateLimit')
}

/**
 * A pool's or a backend's tls (`key` names it): PEM may be a Buffer, which the schema sees as the text it holds;
 * whether it is PEM at all, and usable, normalizeTls says (a file's paths are read before, backend-tls-files.ts).
 */
export function checkTls (options: unknown, key: string): void {
  const text = (value: unknown): unknown => Buffer.isBuffer(value) ? value.toString('latin1') : value
  const view = options !== null && typeof options === 'object' && !Array.isArray(options)
    ? Object.fromEntries(Object.entries(options).map(([field, value]) => [field, Array.isArray(value) ? value.map(text) : text(value)]))
    : options
  judge(validateTls, view, key)
}

/** A route's mirror, as the file's schema says it. */
export function checkMirror (options: unknown): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionError('mirror must be an object like { pool: \'api-next\', percent: 10 }')
  }
  judge(validateMirror, options, 'mirror')
}

/** A registration's tracing, as the file's top-level `tracing` is checked. */
export function checkTracing (options: unknown): void {
  if (options === null || typeof options !== 'object' || Array.isArray(options)) {
    throw new InvalidOptionError('tracing must be an object like { otlp: \'http://collector:4318\' }')
  }
  judge(validateTracing, options, 'tracing')
}

/** A split route's pools, then the rule between their weights that a schema cannot say. */
export function checkSplit (pools: unknown): void {
  judge(validateSplit, pools, 'pools')
  const entries = pools as Array<{ pool: string, weight: number }>
  const twice = entries.findIndex((entry, index) => entries.findIndex((other) => other.pool === entry.pool) !== index)
  if (twice !== -1) throw new InvalidOptionError(`pools[${twice}] names pool "${entries[twice].pool}" again: give each pool once, with its whole weight`)
  const problem = splitWeightsProblem(entries.map((entry) => entry.weight))
  if (problem !== undefined) throw new InvalidOptionError(`pools ${problem}`)
}

/** Weights that send nowhere: every one 0. Also the admin's check of new weights. */
export function splitWeightsProblem (weights: number[]): string | undefined {
  return weights.some((weight) => weight > 0) ? undefined : `must give at least one pool a weight above 0, got ${weights.join(', ')}`
}

/** One backend given on its own (goload.add): `key` is what messages call it. */
export function checkBackend (backend: unknown, key: string): void {
  const view = backendView(backend, key)
  judge(validateBackend, view, key)
}

/** Throws naming every problem the schema finds in `value` (ajv sets `errors` whenever a check fails). */
function judge (validate: ValidateFunction, value: unknown, within: string): void {
  if (!validate(value)) refuse(problemsOf(validate.errors!, value), within)
}

function refuse (problems: Problem[], within: string): never {
  const unknown = (problem: Problem): number => problem.message.startsWith('unknown ') ? 0 : 1
  problems.sort((a, b) => unknown(a) - unknown(b))
  throw new InvalidOptionError(problems.map((problem) => sentence(problem, within)).join('; '))
}

/** `timeout must be a positive integer, got 0`, `queue has an unknown field "size" (did you mean max?)`. */
function sentence (problem: Problem, within: string): string {
  const unknown = /^unknown (?:option|key)(.*)$/.exec(problem.message)
  if (unknown !== null) {
    const parent = named(within, problem.path.slice(0, -1))
    const name = JSON.stringify(String(problem.path.at(-1)))
    return parent === '' ? `unknown option ${name}${unknown[1]}` : `${parent} has an unknown field ${name}${unknown[1]}`
  }
  return `${named(within, problem.path) || 'options'} ${problem.message}`
}

/** `backend "a"` and ['tls', 'ca'] as `backend "a".tls.ca`. */
function named (within: string, path: Array<string | number>): string {
  const rest = keyPath(path)
  return within === '' || rest === '' || rest.startsWith('[') ? within + rest : `${within}.${rest}`
}
