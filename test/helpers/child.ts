/**
 * The environment for a child process that runs lib/ through tsx: the test's own, with tap's coverage turned off.
 * tsx compiles lib/ differently from tap's loader, and V8 coverage of two compilations of one file cannot be
 * merged (its ranges are offsets into the compiled code): counted, such a child marked lines as run that no test ran.
 */
export function childEnv (env: Record<string, string> = {}): NodeJS.ProcessEnv {
  return { ...process.env, _TAPJS_PROCESSINFO_COVERAGE_: '0', ...env }
}
