// Package plugins defines the contract between a worker and the steps of a
// proxy's plugin chain, and the registry that names them.
//
// A Plugin sees each request before the target does and, through the
// ResponseWriter it passes on, each response after: it either calls next
// exactly once or answers the request itself and stops the chain. Request
// hooks therefore run in sequence order and response hooks in reverse.
//
// Plugins are Go code, described by a Spec (name, configuration section,
// settings struct, factory) and registered in one list, plugins/builtin;
// each decodes its own section strictly with Config.Section, which takes
// out the chain's own keys (configs.ChainKeys: excludeUrls) first and
// reports a key the plugin's settings lack as a *configs.UnknownKeyError
// with its line. configs.Parse checks every section of a file against
// its Spec's Settings, so a section of a plugin out of the sequence is
// checked too.
// edgemicro.plugins.sequence
// picks and orders them for every proxy, after analytics, which always
// runs first when it is on. Chain compiles a proxy's chain once per
// configuration revision, first plugin outermost, each link skipping its
// plugin for the paths of excludeUrls, so the hot path does no lookups. A
// name that is not registered, or a section a plugin refuses, is a
// configuration error, found by Check in the master before any worker
// sees the configuration.
//
// A request with plugins carries an Exchange that its steps share: who it
// was authenticated as, what the target did, and which plugin answered.
// Env gives a plugin the instance's shared pieces: the limit zone, the API
// key verifier, the analytics sink, and the per-revision store of values
// built once (SharedValue, typed).
package plugins
