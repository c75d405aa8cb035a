// Package worker is the process that serves requests.
//
// The master starts N workers of the same binary (`mgw worker`), each with
// four inherited descriptors: the shared listening socket, its end of an
// IPC socketpair (see package ipc), the shared limit zone and the
// generation's balance table, in which it counts its open connections so
// that a burst of new ones spreads over the workers (package balance). A
// worker never reads a configuration file. Its life:
//
//  1. send Hello, wait for the first Config, compile it into a runtime
//     (routes in a tree keyed by path chunk for the longest-prefix match,
//     one plugin chain per proxy, pooled keep-alive transports to the
//     targets);
//  2. serve on the inherited socket and send Ready;
//  3. on each later Config, compile a new runtime and swap one atomic
//     pointer, then Ack the revision. A request loads the pointer once, so
//     it sees one revision end to end; a compile error keeps the old
//     runtime and goes back in the Ack;
//  4. on Drain, on SIGTERM, or when the channel reads EOF (the master is
//     gone): stop accepting, answer with Connection: close from then on,
//     close keep-alive connections that stay idle for the grace period,
//     and exit when no connection is left or at the drain timeout. The
//     first of these starts the drain; a later one changes nothing.
//
// In the code, Run is three parts: start (start.go) does steps 1 and 2;
// the loop (loop.go) is one goroutine with one select that owns the
// worker's phase (starting, serving, draining, stopped) and its timers,
// and hands each event to the method named after it: onConfig,
// onDrainOrder, onStop (SIGTERM), onMasterGone, onServeError,
// onDrained, onStatsBeat, and the records' flush (onRecordsWaiting,
// onFlushDue, onRecordsFull); close puts away what start opened.
// Requests never pass through the loop.
//
// The drain itself (waiting out the grace, then the connections) runs on
// a goroutine of its own and reports its end to the loop (onDrained), so
// that the loop dispatches on while the worker finishes its requests: it
// sends its stats beats, marked draining (a drain may last longer than
// the master lets a worker be silent, and the master's status shows the
// state), flushes records, and takes the master's frames, so that the
// API-key answers queued behind them reach their requests. A config
// revision that arrives during a drain is applied and acknowledged like
// any other.
//
// Plain HTTP/1.1 is served by the hand-written server of package h1,
// which hands every connection it does not serve itself to net/http;
// HTTPS is net/http's. Plain-HTTP targets are reached with h1's client.
//
// Connection pools to targets outlive revisions: a transport is keyed by
// the target's scheme and host, its limits and its TLS settings, so a
// configuration push does not drop warm connections.
//
// Before routing, a request's path is normalized once (path.go): the
// form routing, excludeUrls, the plugins and the target all see, so that
// no encoding of ".." can pass a check on one path and reach another; a
// path that cannot be made normal is refused with 400. The client address
// is the connection's peer, or behind one of trusted_proxies the
// right-most untrusted X-Forwarded-For entry (clientip.go).
//
// Nothing a request does waits for the master: analytics records go to a
// bounded buffer that the sink's own goroutine writes out (full: dropped
// and counted), and API-key asks and quota watches are written from
// goroutines of their own, an ask bounded by the request's key timeout.
// Nor does the loop wait for it: its acks and stats beats go through an
// outbox whose own goroutine writes them (outbox.go; the newest stats
// replace unsent ones, at most maxAcks acks wait), so a stopped master
// holds no drain; only start writes to the master itself (hello, the
// first ack, ready), before the worker serves.
//
// An accept that fails for want of file descriptors is retried with a
// backoff, never the end of the worker.
//
// Besides proxying, a worker verifies API keys for its auth plugins (the
// snapshot's apps in local mode, the master's instance-wide cache over
// IPC in Edge mode), serves the local-mode token service, collects
// analytics records and metric counters and sends both to the master, and
// serves HTTPS with the certificate of the serving revision.
package worker
