import neostandard from 'neostandard'

export default neostandard({ ts: true, ignores: ['dist', 'dist-example', 'scratch', 'coverage', '.tap'] })
