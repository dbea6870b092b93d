import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A temporary folder for config files, removed when the test ends. */
export async function configFolder (t: { teardown: (fn: () => Promise<void>) => void }): Promise<(name: string, text: string) => Promise<string>> {
  const folder = await mkdtemp(join(tmpdir(), 'goload-config-'))
  t.teardown(() => rm(folder, { recursive: true, force: true }))
  return async (name, text) => {
    const file = join(folder, name)
    await writeFile(file, text)
    return file
  }
}
