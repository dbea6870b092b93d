import { writeFile } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import { configSchema } from './schema.js'

/** goload.schema.json at the package root, for `# yaml-language-server: $schema=` lines and editors. */
export const schemaFile = fileURLToPath(new URL('../../goload.schema.json', import.meta.url))

/** The schema as JSON: typebox's own markers are symbols, which JSON leaves out. */
export function schemaJson (): string {
  return `${JSON.stringify(configSchema, null, 2)}\n`
}

// `npm run build` calls this from dist/, so the shipped file is always the compiled schema.
export async function writeSchema (file = schemaFile): Promise<void> {
  await writeFile(file, schemaJson())
}
