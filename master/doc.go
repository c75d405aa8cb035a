// Package master is the process that owns an mgw instance: the listening
// socket (through cloudflare/tableflip, so it survives upgrades), the
// configuration, the worker table and the control socket mgw.sock.
//
// One goroutine runs one select loop that owns all of a generation's
// state: worker events (hello, ack, ready, stats, exit), restart timers,
// control requests, config file changes, Edge polls, metrics scrapes, log
// rotation, signals and the upgrade's outcome. Nothing else touches the
// worker table, so it needs no locks. Work that waits on the network runs
// beside it and reports back: Edge downloads, the API key cache, the
// analytics uploader and the quota syncer of the edge backend.
//
// Where to find it: setup (setup.go) builds what the loop needs; the
// loop (loop.go) only dispatches, one handler per event, named for it:
// onWorkerEvent, onSignal, onControlRequest, onConfigFileChanged,
// onEdgePollTick and onEdgePollResult, onLogCheck, onBeatCheck
// (events.go), startUpgrade, onUpgradeDone and onReplaced (upgrade.go),
// beginStop, stopNow, onDrainTimeout and endIfDrained (stop.go). Where a
// generation is in its life is one value, its phase (phase.go): starting,
// serving, upgrading, replaced, draining or quitting. tableflip is reached
// through the upgrader interface (upgrade.go), so that the tests run
// reloads, upgrades, control requests and the whole loop with a double
// and fake workers, on fake time.
//
// Load and Preflight run a generation's loading and pre-serving checks
// without serving and without writing (no Edge cache), for `mgw verify`
// and `mgw config show`.
//
// The process `mgw start` runs is the keeper (Keep): the child subreaper
// that starts the first master, stays while any generation runs, passes
// signals on to the serving master, restarts a master that died and
// reaps orphans. Every master generation is its child (once the
// generation before has exited). Each generation that serves hands the
// keeper its listening sockets over a socketpair (inherit.go); the
// keeper gives them to a master it restarts, so that connections made
// while no master serves wait in the backlog, and lets them go on a stop.
//
// Life of a generation:
//
//  0. signal handlers first: SIGHUP while starting is a reload once
//     serving, SIGTERM/SIGINT/SIGQUIT end the start without serving;
//  1. load and validate the configuration (in Edge mode: download from
//     Edge, or start from the cache), Listen through tableflip, map the
//     limit zone mgw.zone, create the generation's balance table, spawn
//     N workers (`mgw worker`) with the listener at fd 3, an IPC
//     socketpair end at fd 4, the zone at fd 5 and the balance table at
//     fd 6, push the snapshot to each;
//  2. when every worker reports ready: install mgw.sock (bound under a
//     temporary name and renamed over the path, mode 0600), write
//     mgw.pid, call tableflip's Ready (which releases the previous
//     generation; if that one died meanwhile, this one serves on its
//     own), and watch the config file's directory;
//  3. serve: a dead worker is replaced at once, a crash-looping one after
//     an exponential backoff; a valid config edit becomes a new revision
//     pushed to every worker in place; an invalid one is logged and kept
//     out;
//  4. on reload (mgw reload or SIGHUP): wait for a previous generation
//     still draining, then tableflip.Upgrade starts the next generation
//     with the same arguments; it reads the config afresh and succeeds only
//     when all its workers serve. A failed generation writes its reason to
//     a file named in MGW_UPGRADE_ERRFILE, and this one keeps serving;
//  5. when replaced, or on stop (mgw stop, SIGTERM, SIGINT; a stop first
//     closes the gateway socket so new connections are refused): order every
//     worker to drain, wait for them to exit (SIGKILL after the drain
//     timeout), read their channels to the end, upload (or spool) the
//     analytics records, and exit. SIGQUIT kills the workers at once.
//
// Signals: SIGHUP reload, SIGTERM and SIGINT graceful stop, SIGQUIT stop
// now, SIGUSR1 reopen the log file (passed on to the workers).
package master
