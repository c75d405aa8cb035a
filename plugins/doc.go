// Package plugins defines the contract between a worker and the steps of a
// proxy's plugin chain, and the registry that names them.
//
// A Plugin sees each request before the target does and, through the
// ResponseWriter it passes on, each response after: it either calls next
// exactly once or answers the request itself and stops the chain. Request
// hooks therefore run in sequence order and response hooks in reverse.
//
// Plugins are Go code, registered by name with Register from an init
// function and built into the binary; edgemicro.plugins.sequence picks and
// orders them for every proxy. Chain compiles a proxy's chain once per
// configuration revision, first plugin outermost, so the hot path does no
// lookups. A name that is not registered is a configuration error, found by
// Check in the master before any worker sees the configuration.
package plugins
