// Package ipc is the contract between mgw processes: the master and its
// workers, and the mgw command line and a running master.
//
// Every message travels in one frame: an 8-byte header (the magic bytes
// "MG", the protocol version, the message kind, and the payload length as a
// big-endian uint32) followed by a payload of at most MaxFrameSize bytes:
// JSON, except for records frames, whose payload is JSON lines passed on
// unparsed. The length is checked before anything is allocated, and the
// payload is allocated as it arrives, not all at once as the header
// announces it (or read into a buffer the reader reuses: Conn.RecvInto), so a peer that sends garbage, an oversize frame or a
// large header and little else gets an error, never a crash. A frame of
// a kind the reader does not know still decodes; the receiver decides
// whether to ignore it. New messages are new kinds with their own payload
// types: the framing never changes for them.
//
// A worker is started with four inherited descriptors: ListenerFD, the
// shared listening socket, ChannelFD, its end of a socketpair made by Pair,
// ZoneFD, the file of the shared limit zone it maps, and BalanceFD, the
// generation's table of connections per worker (worker/balance). The master keeps
// the other end of the socketpair. When the master dies the kernel closes its end
// and the worker reads EOF, which it treats as the order to drain and exit.
//
// The conversation between master and worker:
//
//	worker → master  Hello   {worker id, pid, protocol}
//	master → worker  Config  {revision, snapshot}        (first one, then on every change)
//	worker → master  Ack     {revision applied, or error}
//	worker → master  Ready   {revision}                  (once, when it serves)
//	worker → master  Stats   {requests, active, metrics} (about once a second)
//	worker → master  KeyAsk  {id, api key}               (Edge mode; answered by KeyTell)
//	master → worker  KeyTell {id, token | status | error}
//	worker → master  Records (JSON lines)                (analytics, every 50 ms)
//	worker → master  QuotaWatch {identifier, …}          (edge quota backend, once per identifier)
//	master → worker  Drain   {grace, timeout}
//
// The command line talks to the master over the control socket mgw.sock
// with one Control frame and one Reply frame.
package ipc
