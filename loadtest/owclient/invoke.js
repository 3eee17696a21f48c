// Drives the official OpenWhisk JavaScript client (npm "openwhisk") against
// an apihost, for sequoia's tests (serve/platform_openwhisk_test.go).
// Prints one JSON object on stdout.
//
//   OW_APIHOST=http://127.0.0.1:8080 OW_AUTH=user:pass OW_NAMESPACE=guest \
//   OW_ACTION=hello [OW_BURST=100] node invoke.js blocking|activation|nonblocking|burst|error
'use strict'
const openwhisk = require('openwhisk')

const ow = openwhisk({
  apihost: process.env.OW_APIHOST,
  api_key: process.env.OW_AUTH,
  namespace: process.env.OW_NAMESPACE
})
const name = process.env.OW_ACTION || 'hello'

async function main (mode) {
  switch (mode) {
    case 'blocking':
      return { result: await ow.actions.invoke({ name, blocking: true, result: true, params: { n: 1 } }) }
    case 'activation':
      return { activation: await ow.actions.invoke({ name, blocking: true, params: { n: 1 } }) }
    case 'nonblocking':
      return { activation: await ow.actions.invoke({ name, params: { n: 1 } }) }
    case 'burst': {
      const n = Number(process.env.OW_BURST || 100)
      const calls = Array.from({ length: n }, (_, i) =>
        ow.actions.invoke({ name, blocking: true, result: true, params: { i } }))
      const settled = await Promise.allSettled(calls)
      return {
        ok: settled.filter(r => r.status === 'fulfilled').length,
        errors: settled.filter(r => r.status === 'rejected').map(r => String(r.reason && r.reason.message))
      }
    }
    case 'error':
      try {
        await ow.actions.invoke({ name, blocking: true, result: true, params: {} })
        return { error: null }
      } catch (e) {
        return { error: { name: e.name, message: e.message, statusCode: e.statusCode, body: e.error } }
      }
  }
  throw new Error('unknown mode ' + mode)
}

main(process.argv[2]).then(
  out => console.log(JSON.stringify(out)),
  e => { console.log(JSON.stringify({ fatal: String(e && e.message), statusCode: e && e.statusCode })); process.exit(1) }
)
