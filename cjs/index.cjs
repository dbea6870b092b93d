'use strict'
// The CommonJS entry. As with other Fastify plugins, require('fastify-goload') is the plugin itself, and
// .default and .goload name it too. It is the ES module's own plugin (Node 20.19+ requires ES modules
// synchronously), so CommonJS and ESM users share one copy of the code.
const { default: plugin } = require('../dist/index.js')

module.exports = plugin
module.exports.default = plugin
module.exports.goload = plugin
