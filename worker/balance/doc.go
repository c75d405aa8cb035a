// Package balance spreads new connections evenly over the workers that
// share one listening socket. Every worker's netpoller is woken by a new
// connection and the first to run takes it, and then the next: a burst of
// keep-alive connections (a load balancer's pool, wrk's 64) can land on
// one worker, which with GOMAXPROCS = CPUs / workers can use only its
// share of the machine. nginx avoids this with EPOLLEXCLUSIVE, which Go's
// netpoller does not offer.
//
// The master creates a Table per generation: shared memory with one
// counter per worker, passed to each worker as a descriptor. A worker
// counts its open connections in it and, when connections queue up
// faster than it accepts them, yields the backlog to the others for a
// few milliseconds while it holds more than its share (Table.Over);
// after that it accepts anyway, so a worker that
// is slow to run delays new connections by at most that long, and after
// three such waits in a row it stops waiting for a second, so that a
// stuck worker costs the others little. The master marks a worker's
// counter absent when it exits, so that the others do not wait for a
// worker that is not there.
package balance
