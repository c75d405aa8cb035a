// Package analytics makes one record per request that matched a proxy,
// with edgemicro's fields (docs/COMPATIBILITY.md), rejected requests included,
// and gets the records to Edge from one place per instance.
//
// The plugin always runs first: it sees the request before any other
// plugin can refuse it and the final status after all of them. It hands
// each record to the worker, which sends them to the master in small
// batches over IPC. The master's Queue holds them in a bounded buffer
// (the oldest dropped, and counted, when it is full) and uploads a batch
// as soon as it is full and what is queued every flushInterval, up to
// concurrency uploads at once (so a round trip to Edge does not cap the
// rate at one batch per trip), gzipped when compress is set, retrying
// with backoff and re-queueing what Edge rejects. Because the queue lives in
// the master, a worker that exits or crashes loses nothing it has sent;
// on stop and reload the master uploads what is left before it exits, and
// spools to a file in the run dir what it could not, for the next
// generation to send. In local mode the records go to a JSON-lines file.
//
// The master does no work per record. A worker's records frame (JSON
// lines) is read into a buffer of this package's pool (Buffer) and
// queued whole; the queue counts its records with one scan for
// newlines. A batch is copied out of the queued frames into another
// buffer of the pool, and its upload body ({"records":[…]}) into a third,
// the newlines between records becoming commas; each goes back to the
// pool when it is used up. So the master's steady state allocates no
// memory per frame or per batch.
package analytics
