// Package configs reads, checks and freezes mgw's configuration.
//
// A configuration is one TOML file whose sections follow Edge
// Microgateway's YAML (docs/CONFIG.md). Parse substitutes ${VAR} references from
// the environment, decodes strictly (an unknown key is an error naming the
// key, its line and the closest known key; every plugin section is
// decoded into the settings its plugin registered with AllowSection,
// whether or not the plugin runs), fills defaults, and validates,
// collecting every problem into one error a user can act on. The result
// is wrapped in a Snapshot with a revision number and a checksum; a
// Snapshot is never modified after it is published, a change builds a
// new one.
//
// The master is the only process that reads configuration files. Workers
// receive Snapshots as JSON over IPC, so what the master validated is
// exactly what the workers run.
//
// When the user named no config (no --config, no --config-dir, no org or
// env) and ~/.mgw/mgw.toml does not exist, mgw runs on Default, the
// embedded default.toml: on 127.0.0.1 only, one demo proxy to the built-in
// mock target (URL scheme "mock"), which answers every request with a JSON
// echo of it. Anything named and missing is an error, never the demo. A
// file with nothing but comments is an error too.
package configs
