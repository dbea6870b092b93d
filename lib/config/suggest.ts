/**
 * The known name a mistyped one was most likely meant to be, for "did you mean": the closest by edit distance, when
 * it is close enough that the suggestion helps (a third of the name's length, at least 1); undefined otherwise.
 */
export function closest (name: string, known: Iterable<string>): string | undefined {
  let best: string | undefined
  let bestDistance = Math.max(1, Math.floor(name.length / 3)) + 1
  for (const candidate of known) {
    const distance = editDistance(name.toLowerCase(), candidate.toLowerCase())
    if (distance < bestDistance) {
      best = candidate
      bestDistance = distance
    }
  }
  return best
}

/** " (did you mean NAME?)", or '' when no known name is close. */
export function didYouMean (name: string, known: Iterable<string>): string {
  const match = closest(name, known)
  return match === undefined ? '' : ` (did you mean ${match}?)`
}

// Levenshtein with swaps of two neighbours as one edit (prot, wieght): names are a few dozen characters, so a
// table is all it takes.
function editDistance (a: string, b: string): number {
  const table = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => i === 0 ? j : j === 0 ? i : 0))
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      table[i][j] = Math.min(table[i - 1][j] + 1, table[i][j - 1] + 1, table[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) table[i][j] = Math.min(table[i][j], table[i - 2][j - 2] + 1)
    }
  }
  return table[a.length][b.length]
}
