// Package mgwcmd is mgw's command line: it maps commands, flags and their
// environment fallbacks (docs/CLI.md, rendered by clidoc.go) onto the master, worker and ipc packages,
// and builds the root logger. It also owns the log files (logging.go):
// mgw.log and the access log file, which every process of an instance
// appends to itself, each write checking the size cap under a lock of the
// file's directory so that the cap holds whichever process writes. It
// holds no gateway logic of its own.
package mgwcmd
