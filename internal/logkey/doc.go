// Package logkey is mgw's log vocabulary: the name of every field that
// any mgw process writes, as constants, so that the keeper, the master,
// its workers and the command line, all writing one JSON stream, can be
// queried by field.
//
// Every line carries who wrote it: Component (one of the Component…
// values) and PID, the process writing the line. Master and worker lines
// add Generation, worker lines WorkerID. Lines of a plugin add Plugin
// (and Proxy, for the proxy whose chain runs it); lines of a part of a
// process that is not a plugin add Subsystem (net/http's own error log in
// a worker is component=worker subsystem=http; the master's share of a
// plugin, its analytics queue or its quota exchange, is component=master
// plugin=analytics or plugin=quota). Component and PID are put
// in once, where each process derives its logger (the master, the keeper
// and the worker in their own packages, the command line in cmd/mgwcmd);
// a child logger never sets Component again, since zerolog would then
// write the key twice.
//
// Each name has one meaning. PID is always the writer; a process the line
// talks about has its own key: WorkerPID, MasterPID. A worker is named by
// WorkerID (its slot, stable across restarts) and WorkerPID (this
// process of it). An error goes under Error, the key zerolog's Err
// writes; the way a process ended goes under Exit. A duration carries its
// unit in its name (UptimeMS is uptime_ms): zerolog's Dur writes
// milliseconds as a decimal number (zerolog.DurationFieldUnit, which
// cmd/mgwcmd sets explicitly), so a duration field is written with Dur
// and its name ends in _ms. Names are snake_case.
//
// A message is a constant string that says what happened; the values go
// in fields, never into the message (no concatenation, no Msgf), so that
// a query for a message finds every line of it. The test in
// internal/logkey/vocab_test.go holds every package of the module to this
// (a string literal as a field name, or a message built from
// non-constant strings, fails it), except the packages it still lists as
// not yet migrated. The "Log fields" table of docs/OPERATIONS.md is
// rendered from the constants and their comments (fields_test.go checks
// it, and rewrites it with -update), so a new name is documented by
// writing its comment: one sentence of meaning, ending in ", in
// milliseconds." for a duration.
package logkey
