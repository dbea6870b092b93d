// cjs/index.d.cts for TypeScript 5.0 to 5.2, which cannot give an import a resolution-mode: the same types,
// imported plainly. Compile with skipLibCheck on these versions (Fastify 5's own types need it there too).
import type * as esm from '../dist/index.js'

declare const goload: typeof esm.default & { default: typeof esm.default, goload: typeof esm.default }
declare namespace goload {
  export type BackendOptions = esm.BackendOptions
  export type GoloadOptions = esm.GoloadOptions
  export type RouteOptions = esm.RouteOptions
  export type SharedPoolOptions = esm.SharedPoolOptions
  export type SplitOptions = esm.SplitOptions
  export type SplitPoolOptions = esm.SplitPoolOptions
  export type StickyOptions = esm.StickyOptions
  export type HashOn = esm.HashOn
  export type HealthCheckOptions = esm.HealthCheckOptions
  export type PassiveHealthOptions = esm.PassiveHealthOptions
  export type QueueOptions = esm.QueueOptions
  export type RateLimitOptions = esm.RateLimitOptions
  export type MirrorOptions = esm.MirrorOptions
  export type ResolveOptions = esm.ResolveOptions
  export type TlsOptions = esm.TlsOptions
  export type TracingOptions = esm.TracingOptions
  export type CircuitBreakerOptions = esm.CircuitBreakerOptions
  export type RetryBudgetOptions = esm.RetryBudgetOptions
  export type Pem = esm.Pem
  export type Strategy = esm.Strategy
  export type BackendStats = esm.BackendStats
  export type PoolStats = esm.PoolStats
  export type Goload = esm.Goload
  export type GoloadPool = esm.GoloadPool
}
export = goload
