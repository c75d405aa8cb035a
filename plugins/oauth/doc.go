// Package oauth holds the auth plugins of Edge Microgateway, with the
// same configuration keys, status codes and JSON bodies (docs/COMPATIBILITY.md):
// oauth (Bearer JWT or API key), apikeys (API key only)
// and oauthv2 (Bearer JWT only).
//
// A token is verified once per revision and worker: RS256 only, with the
// PEM keys or the JWK selected by kid, exp/nbf/iat checked with
// gracePeriod; verified tokens are kept in a bounded cache so the hot
// path is a map lookup. An API key is turned into a token by the worker's
// KeyVerifier (the master's instance-wide cache in Edge mode, the apps of
// mgw.toml in local mode) and then treated like a Bearer token. Access is
// granted when a product of the token covers the proxy and the path,
// exactly as edgemicro's validateResourcePath decides. Each product's
// resources are compiled once per revision and shared by every proxy's
// plugin (resources.go), so start and memory grow with proxies +
// products, not with their product.
package oauth
