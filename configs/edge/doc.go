// Package edge talks to an Apigee org the way Edge Microgateway does
// (docs/COMPATIBILITY.md). A Client downloads the bootstrap (proxies), the products and
// the JWT public keys in one Download; Merge turns a Download into the
// proxies, products and keys of a configs.Snapshot, dropping what a
// gateway cannot serve with a log line. After every good download the
// master writes it to the cache file, so an instance can start while Edge
// is unreachable. The cache holds only what Edge sent: no key, secret or
// environment value is ever written there.
//
// KeyCache verifies API keys against Edge's verifyApiKey once per key and
// token lifetime for the whole instance: the master owns it and workers
// ask it over IPC.
//
// Mgmt is the client of the Edge management API for the command line
// (configure, genkeys, cert, rotatekey …): calls time out, GETs are
// retried, and a failure names Edge's status and message.
package edge
