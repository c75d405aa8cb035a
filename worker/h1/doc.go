// Package h1 is the worker's hand-written HTTP/1.1: a server for the
// common request and a client for plain-HTTP targets, built for a proxy
// on a machine it shares with its target.
//
// net/http spends most of a small proxied request's CPU time outside
// the proxy's own work: a goroutine per request watching the client
// connection, and two goroutines per target connection that each request
// is handed through. Here one goroutine per client connection parses the
// head in place, runs the handler, and the proxy's RoundTrip writes the
// request and reads the answer on a pooled target connection itself.
// Requests and answers are still net/http's types, so plugins see nothing
// different.
//
// A request's context ends when its handler returns, as with net/http,
// and when its client goes away, which the server watches for only once
// the request has run for 100 ms: a timer per request, not a goroutine.
// The client ends a round trip when its request's context is canceled;
// for a context of this package's server it learns of it from the server
// connection directly, without context.AfterFunc. So a client that gives
// up on a slow target ends the target request too, and the proxy logs
// 499, as edgemicro does.
//
// The server serves only what it parses exactly as net/http would: an
// HTTP/1.1 request with a path, one Host, and either no body or a
// Content-Length. Anything else (HTTP/1.0, chunked or Expect bodies,
// Upgrade, folded or malformed lines, a head longer than its buffer) is
// handed, with the bytes already read, to a fallback server, net/http,
// for the rest of that connection's life, before a byte is answered;
// FallbackListener carries the connections over, and OneRequest makes
// the fallback close each after the request it was handed over for, so
// that every request head passes this server's screen. Before handing a head
// over, the server reads it whole and refuses, itself, what neither
// server should serve: CONNECT (405), both Content-Length and
// Transfer-Encoding (400), a head past MaxHeaderBytes (431). It closes
// such a connection, and one whose handler left a large body unread,
// with a lingering close, so that a client still sending reads the
// answer instead of a reset. Request bodies are read within
// BodyIdleTimeout and BodyTimeout (GuardBodies does the same for
// net/http); a body that fails is a *RequestBodyError.
//
// The client reuses a pooled connection only if nothing arrived on it
// while it was idle (a non-blocking peek at the socket), frames answers
// exactly as net/http's ReadResponse (differential fuzz target
// FuzzResponse), and refuses a 101 the request did not ask for. Unlike
// ReadResponse it keeps an answer's Connection: close header, so that
// the proxy can remove the fields it names.
// Its files follow an exchange: client.go (Transport, RoundTrip and the
// end of an exchange when its context ends), clientpool.go (the pool of
// keep-alive connections), clientwire.go (writing the request, reading
// the answer's head) and clientbody.go (the framing of the answer's
// body).
//
// RawConn makes a TCP connection's reads and writes raw system calls
// through the netpoller; the worker wraps every client and target
// connection in it.
package h1
