import { extname } from 'node:path'
import { parse as parseToml, TomlError } from 'smol-toml'
import { isMap, isSeq, LineCounter, parseDocument, type Node } from 'yaml'
import type { Problem } from './errors.js'

export type Locate = (path: Array<string | number>) => number | undefined

/** A file's content, and where each key path is written (a line number) when the format keeps positions. */
export interface ParsedFile {
  data: unknown
  locate: Locate
}

export const formats: Record<string, 'yaml' | 'toml' | 'json'> = { '.yaml': 'yaml', '.yml': 'yaml', '.toml': 'toml', '.json': 'json' }

/** Parses by the file's extension; syntax errors come back as problems with line and column. */
export function parseConfigText (file: string, text: string): ParsedFile | Problem[] {
  const format = formats[extname(file).toLowerCase()]
  if (format === 'toml') return parseTomlText(text)
  if (format === 'json') return parseJsonText(text)
  return parseYamlText(text)
}

function parseYamlText (text: string): ParsedFile | Problem[] {
  const lineCounter = new LineCounter()
  const document = parseDocument(text, { lineCounter, prettyErrors: false })
  // The first error only: the yaml package reports what follows a mistake as more mistakes.
  const [error] = document.errors
  if (error !== undefined) {
    const position = lineCounter.linePos(error.pos[0])
    return [{ path: [], message: error.message, line: position.line, column: position.col }]
  }
  return { data: document.toJS(), locate: yamlLocator(document.contents, lineCounter) }
}

function parseTomlText (text: string): ParsedFile | Problem[] {
  try {
    return { data: parseToml(text), locate: () => undefined }
  } catch (error) {
    // smol-toml keeps positions for syntax errors only; its message repeats them with the offending lines.
    const { line, column, message } = error as TomlError
    return [{ path: [], message: message.split('\n')[0].replace(/^Invalid TOML document: /, ''), line, column }]
  }
}

function parseJsonText (text: string): ParsedFile | Problem[] {
  let data: unknown
  try {
    data = JSON.parse(text)
  } catch (error) {
    const message = (error as Error).message
    const position = jsonErrorOffset(text, message)
    const { line, col } = lineAndColumn(text, position)
    return [{ path: [], message: message.replace(/ in JSON at position \d+.*$/, '').replace(/, (\.\.\.)?".*"(\.\.\.)? is not valid JSON$/s, ''), line, column: col }]
  }
  // JSON is YAML: read again by the yaml package, the file gets line numbers for every key, and a key given twice
  // (which JSON.parse lets the last one win) is an error as in the two other formats.
  const lineCounter = new LineCounter()
  const document = parseDocument(text, { lineCounter, prettyErrors: false })
  const duplicate = document.errors.find((error) => error.code === 'DUPLICATE_KEY')
  if (duplicate !== undefined) {
    const position = lineCounter.linePos(duplicate.pos[0])
    return [{ path: [], message: duplicate.message, line: position.line, column: position.col }]
  }
  return { data, locate: document.errors.length === 0 ? yamlLocator(document.contents, lineCounter) : () => undefined }
}

// Node 20's JSON.parse says "at position N" for most errors, but not for an unexpected token, where it quotes the
// text instead: all of it when short, else 10 characters either side of the token between "...".
function jsonErrorOffset (text: string, message: string): number {
  const at = /at position (\d+)/.exec(message)
  if (at !== null) return Number(at[1])
  const quoted = /^Unexpected token '(.+?)', (\.\.\.)?"(.*)"(\.\.\.)? is not valid JSON$/s.exec(message)
  if (quoted === null) return text.length
  const [, token, before, context, after] = quoted
  if (before === undefined && after === undefined) return text.indexOf(token)
  const start = before === undefined ? 0 : text.indexOf(context)
  // About 10 characters in, unless the quote starts at the beginning of the text.
  const near = before === undefined ? context.length - 10 : 10
  return start + context.indexOf(token, near - 2)
}

function lineAndColumn (text: string, offset: number): { line: number, col: number } {
  const lineCounter = new LineCounter()
  parseDocument(text, { lineCounter })
  return lineCounter.linePos(offset)
}

// The line of the deepest key of `path` that is written in the file: the key itself for a map entry (so an unknown
// key points at its own line), the item for a list entry.
function yamlLocator (root: Node | null, lineCounter: LineCounter): Locate {
  return (path) => {
    let node: unknown = root
    let offset = (root as Node | null)?.range?.[0]
    for (const key of path) {
      if (isMap(node)) {
        const pair = node.items.find((item) => String((item.key as { value?: unknown } | null)?.value) === String(key))
        if (pair === undefined) break
        offset = (pair.key as Node).range?.[0] ?? offset
        node = pair.value
      } else if (isSeq(node) && typeof key === 'number' && node.items[key] !== undefined) {
        node = node.items[key]
        offset = (node as Node).range?.[0] ?? offset
      } else {
        break
      }
    }
    return offset === undefined ? undefined : lineCounter.linePos(offset).line
  }
}
