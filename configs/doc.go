// Package configs reads, checks and freezes mgw's configuration.
//
// A configuration is one TOML file whose sections follow Edge
// Microgateway's YAML (SPEC §3). Parse substitutes ${VAR} references from
// the environment, decodes strictly (an unknown key is an error naming the
// key and its line), fills defaults, and validates, collecting every problem
// into one error a user can act on. The result is wrapped in a Snapshot with
// a revision number and a checksum; a Snapshot is never modified after it is
// published, a change builds a new one.
//
// The master is the only process that reads configuration files. Workers
// receive Snapshots as JSON over IPC, so what the master validated is
// exactly what the workers run.
//
// When no file exists, mgw runs on Default, the embedded default.toml: one
// demo proxy to the built-in mock target (URL scheme "mock"), which answers
// every request with a JSON echo of it.
package configs
