#!/usr/bin/env node
import { main } from './main.js'

// Exit with main's code once it is done: connections and timers of a closed server must not keep the process up.
process.exit(await main(process.argv.slice(2)))
