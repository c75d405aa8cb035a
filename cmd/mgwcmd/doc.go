// Package mgwcmd is mgw's command line: it maps commands, flags and their
// environment fallbacks (docs/CLI.md, rendered by clidoc.go) onto the master, worker and ipc packages,
// and builds the root logger. It holds no gateway logic of its own.
package mgwcmd
