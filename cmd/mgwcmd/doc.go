// Package mgwcmd is mgw's command line: it maps commands, flags and their
// environment fallbacks (SPEC §1) onto the master, worker and ipc packages,
// and builds the root logger. It holds no gateway logic of its own.
package mgwcmd
