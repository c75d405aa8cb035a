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
//     (routes sorted for longest-prefix match, one plugin chain per proxy,
//     pooled keep-alive transports to the targets);
//  2. serve on the inherited socket and send Ready;
//  3. on each later Config, compile a new runtime and swap one atomic
//     pointer, then Ack the revision. A request loads the pointer once, so
//     it sees one revision end to end; a compile error keeps the old
//     runtime and goes back in the Ack;
//  4. on Drain, on SIGTERM, or when the channel reads EOF (the master is
//     gone): stop accepting, answer with Connection: close from then on,
//     close keep-alive connections that stay idle for the grace period,
//     and exit when no connection is left or at the drain timeout.
//
// Plain HTTP/1.1 is served by the hand-written server of package h1,
// which hands every connection it does not serve itself to net/http;
// HTTPS is net/http's. Plain-HTTP targets are reached with h1's client.
//
// Connection pools to targets outlive revisions: a transport is keyed by
// the target's scheme and host, its limits and its TLS settings, so a
// configuration push does not drop warm connections.
//
// Besides proxying, a worker verifies API keys for its auth plugins (the
// snapshot's apps in local mode, the master's instance-wide cache over
// IPC in Edge mode), serves the local-mode token service, collects
// analytics records and metric counters and sends both to the master, and
// serves HTTPS with the certificate of the serving revision.
package worker
