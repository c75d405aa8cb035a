package master

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/cloudflare/tableflip"
	"github.com/mgw-gateway/mgw/internal/logkey"
	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"
)

// The keeper holds the listening sockets of the serving generation, so
// that while no master serves (a master that died, before the keeper has
// restarted one) connections wait in the kernel's backlog instead of
// being refused, and the master it restarts serves them.
//
// The keeper and every master generation share one channel: a
// SOCK_SEQPACKET socketpair whose master end the keeper gives to each
// master it starts (at fd keeperChanFD, named by keeperChanEnv) and each
// master hands to the next generation through tableflip (as the file
// keeperChanName). A generation that serves sends the keeper its
// listening sockets (SCM_RIGHTS), and the keeper drops the ones it held
// before: so it holds what serves, also after a reload moved the port. A
// master that stops sends "release" and, before it answers the stop,
// waits until the keeper has let go, so that a stop refuses new
// connections and frees the port; when the keeper does not answer in
// time, the master shuts the sockets down itself. A master's messages go
// out on a goroutine of their own: its loop never waits for the keeper. A
// master the keeper restarts gets the held sockets at fds
// keeperListenFD and up, named in keeperListenEnv, and listens on them
// instead of binding anew.
const (
	keeperChanEnv   = "MGW_KEEPER_CHANNEL"
	keeperListenEnv = "MGW_KEEPER_LISTENERS"
	keeperChanFD    = 3
	keeperListenFD  = 4
	keeperChanName  = "mgw.keeper"
	// keeperMaxSockets bounds the sockets one message carries: the
	// gateway's and the metrics listener today.
	keeperMaxSockets = 8
	// keeperMsgMagic starts every message, with the protocol version.
	keeperMsgMagic = "mgw-keeper 1"
	// keeperReleaseWait bounds how long a stopping master waits for the
	// keeper to let go of the sockets.
	keeperReleaseWait = 2 * time.Second
)

// The kinds of keeper messages.
const (
	keeperHold    = "hold"
	keeperRelease = "release"
)

// keeperMsg is one message from a master to its keeper.
type keeperMsg struct {
	kind string
	pid  int
	// names are the sockets of a hold, network:address as the master
	// listened, one for each descriptor in order.
	names []string
}

// encode returns the message's bytes.
func (m keeperMsg) encode() []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%s %s %d\n", keeperMsgMagic, m.kind, m.pid)
	for _, n := range m.names {
		b.WriteString(n)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// decodeKeeperMsg parses a message that came with nfds descriptors. A
// hold names one socket per descriptor; a release carries one
// descriptor, closed once the keeper has let go.
func decodeKeeperMsg(b []byte, nfds int) (keeperMsg, error) {
	var m keeperMsg
	lines := strings.Split(string(b), "\n")
	if len(lines) < 2 || lines[len(lines)-1] != "" {
		return m, errors.New("keeper message: not newline-terminated lines")
	}
	lines = lines[:len(lines)-1]
	head := strings.Fields(lines[0])
	if len(head) != 4 || head[0]+" "+head[1] != keeperMsgMagic || lines[0] != strings.Join(head, " ") {
		return m, fmt.Errorf("keeper message: bad head %q", lines[0])
	}
	pid, err := strconv.Atoi(head[3])
	if err != nil || pid <= 0 || strconv.Itoa(pid) != head[3] {
		return m, fmt.Errorf("keeper message: bad pid %q", head[3])
	}
	m.kind, m.pid = head[2], pid
	switch m.kind {
	case keeperHold:
		m.names = lines[1:]
		if len(m.names) != nfds || nfds > keeperMaxSockets {
			return m, fmt.Errorf("keeper message: %d names for %d descriptors", len(m.names), nfds)
		}
		for _, n := range m.names {
			if err := checkSocketName(n); err != nil {
				return m, err
			}
		}
	case keeperRelease:
		if len(lines) != 1 || nfds != 1 {
			return m, fmt.Errorf("keeper message: a release with %d lines and %d descriptors", len(lines), nfds)
		}
	default:
		return m, fmt.Errorf("keeper message: unknown kind %q", m.kind)
	}
	return m, nil
}

// checkSocketName accepts network:host:port with a TCP network.
func checkSocketName(n string) error {
	network, addr, ok := strings.Cut(n, ":")
	if !ok || (network != "tcp" && network != "tcp4" && network != "tcp6") {
		return fmt.Errorf("keeper message: socket %q is not tcp:address", n)
	}
	if _, port, err := net.SplitHostPort(addr); err != nil || port == "" || strings.ContainsAny(n, ", \t") {
		return fmt.Errorf("keeper message: socket %q: bad address", n)
	}
	return nil
}

// keeperSocket is a listening socket the keeper holds. It stays a bare
// descriptor: an os.File's Fd would switch the socket, shared with every
// worker accepting on it, to blocking mode.
type keeperSocket struct {
	name string
	fd   int
}

// keeperChannel is the keeper's side of the channel to its masters.
type keeperChannel struct {
	conn   *net.UnixConn
	child  *os.File // the masters' end, given to each master started
	msgs   chan keeperDelivery
	closed chan struct{}
}

// keeperDelivery is a message as the keeper received it, with its
// descriptors (owned by the receiver), or why it was refused.
type keeperDelivery struct {
	msg keeperMsg
	fds []int
	err error
}

// newKeeperChannel creates the channel and starts reading it.
func newKeeperChannel() (*keeperChannel, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("creating the keeper's channel: %w", err)
	}
	own := os.NewFile(uintptr(fds[0]), "keeper channel")
	defer own.Close()
	c, err := net.FileConn(own)
	if err != nil {
		_ = unix.Close(fds[1])
		return nil, fmt.Errorf("creating the keeper's channel: %w", err)
	}
	ch := &keeperChannel{
		conn:   c.(*net.UnixConn),
		child:  os.NewFile(uintptr(fds[1]), "keeper channel (masters)"),
		msgs:   make(chan keeperDelivery),
		closed: make(chan struct{}),
	}
	go ch.read()
	return ch, nil
}

// read delivers every message until the channel is closed.
func (ch *keeperChannel) read() {
	buf := make([]byte, 4096)
	oob := make([]byte, unix.CmsgSpace(4*keeperMaxSockets))
	for {
		n, oobn, flags, _, err := ch.conn.ReadMsgUnix(buf, oob)
		if errors.Is(err, io.EOF) && n == 0 {
			// A message without bytes (Go reads it as EOF), perhaps with
			// descriptors, not the end: the keeper holds the masters' end
			// too, until close. Refused, and the channel read on: one
			// master's stray write must not cost every later release its
			// wait.
			select {
			case <-ch.closed:
				return
			default:
				err = nil
			}
		}
		if err != nil {
			return // closed
		}
		var d keeperDelivery
		if n == 0 && oobn == 0 {
			d.err = errors.New("keeper message: empty")
		} else {
			d = receive(buf[:n], oob[:oobn], flags)
		}
		select {
		case ch.msgs <- d:
		case <-ch.closed:
			closeFDs(d.fds)
			return
		}
	}
}

// receive decodes one message and takes its descriptors (close-on-exec:
// ReadMsgUnix asks for MSG_CMSG_CLOEXEC), closing them all when the
// message is refused.
func receive(b, oob []byte, flags int) keeperDelivery {
	all := rightsIn(oob)
	refuse := func(err error) keeperDelivery {
		closeFDs(all)
		return keeperDelivery{err: err}
	}
	if flags&(unix.MSG_CTRUNC|unix.MSG_TRUNC) != 0 {
		return refuse(errors.New("keeper message: truncated"))
	}
	m, err := decodeKeeperMsg(b, len(all))
	if err != nil {
		return refuse(err)
	}
	if m.kind == keeperHold {
		for i, fd := range all {
			if !isListening(fd) {
				return refuse(fmt.Errorf("keeper message: %s is not a listening socket", m.names[i]))
			}
		}
	}
	return keeperDelivery{msg: m, fds: all}
}

// rightsIn returns the descriptors of every SCM_RIGHTS message in oob.
// Unlike unix.ParseSocketControlMessage, which gives nothing for a buffer
// with one bad header, it takes every descriptor the buffer still holds
// up to the first bad header: each one that arrived is open in this
// process and must be closed when the message is refused.
func rightsIn(oob []byte) []int {
	var fds []int
	head := unix.CmsgLen(0)
	for len(oob) >= head {
		var l uint64
		var level, typ int32
		if unix.SizeofCmsghdr == 16 {
			l = binary.NativeEndian.Uint64(oob)
			level, typ = int32(binary.NativeEndian.Uint32(oob[8:])), int32(binary.NativeEndian.Uint32(oob[12:]))
		} else {
			l = uint64(binary.NativeEndian.Uint32(oob))
			level, typ = int32(binary.NativeEndian.Uint32(oob[4:])), int32(binary.NativeEndian.Uint32(oob[8:]))
		}
		if l < uint64(head) {
			break
		}
		end := len(oob)
		if l < uint64(end) {
			end = int(l)
		}
		if level == unix.SOL_SOCKET && typ == unix.SCM_RIGHTS {
			for data := oob[head:end]; len(data) >= 4; data = data[4:] {
				// Never one of the standard three, which stay open: a
				// zero there is padding read past a lying header.
				if fd := int32(binary.NativeEndian.Uint32(data)); fd > 2 {
					fds = append(fds, int(fd))
				}
			}
		}
		if l > uint64(len(oob)) {
			break
		}
		next := unix.CmsgSpace(int(l) - head)
		if next > len(oob) {
			break
		}
		oob = oob[next:]
	}
	return fds
}

// close stops reading and closes the keeper's descriptors of the channel.
func (ch *keeperChannel) close() {
	close(ch.closed)
	_ = ch.conn.Close()
	_ = ch.child.Close()
}

// isListening reports whether fd is a socket that accepts connections.
func isListening(fd int) bool {
	v, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ACCEPTCONN)
	return err == nil && v == 1
}

func closeFDs(fds []int) {
	for _, fd := range fds {
		_ = unix.Close(fd)
	}
}

// keeperFiles returns the environment and descriptors (from fd 3) a
// master started by the keeper gets: the channel and the held sockets.
func keeperFiles(ch *keeperChannel, held []keeperSocket) (env []string, files []uintptr) {
	if ch == nil {
		return nil, nil
	}
	files = []uintptr{ch.child.Fd()}
	env = []string{keeperChanEnv + "=" + strconv.Itoa(keeperChanFD)}
	var names []string
	for _, s := range held {
		files = append(files, uintptr(s.fd))
		names = append(names, s.name)
	}
	if len(names) > 0 {
		env = append(env, keeperListenEnv+"="+strings.Join(names, ","))
	}
	return env, files
}

// keeperLink is a master's side of the channel to its keeper. A nil or
// unlinked keeperLink (a master no keeper started) listens through
// tableflip alone and tells no one.
type keeperLink struct {
	log  zerolog.Logger
	conn *net.UnixConn
	// inherited are the sockets the keeper held for this master, by name.
	inherited map[string]int
	// listening are this generation's listeners, to hand to the keeper.
	listening []namedListener
	// holding is set once this generation asked the keeper to hold its
	// sockets, and cleared when the next generation's replace them
	// (superseded): only then does a release concern what the keeper
	// holds.
	holding  bool
	released bool
	// releaseDone closes once the keeper let go after release, or the
	// sockets were shut down without it (unreleased).
	releaseDone chan struct{}
	unreleased  atomic.Bool
	// out feeds the sender, started with the first message.
	out      chan keeperOut
	sendOnce sync.Once
}

type namedListener struct {
	name string
	ln   net.Listener
}

// newKeeperLink takes the channel to the keeper (from the keeper itself,
// or from the previous generation through tableflip) and the sockets the
// keeper held, and hands the channel on to the next generation. Every
// descriptor it takes is close-on-exec, so no worker inherits one.
func newKeeperLink(upg *tableflip.Upgrader, log zerolog.Logger) *keeperLink {
	l := &keeperLink{log: log, inherited: map[string]int{}}
	chanFD, fromKeeper := os.LookupEnv(keeperChanEnv)
	names := os.Getenv(keeperListenEnv)
	_ = os.Unsetenv(keeperChanEnv)
	_ = os.Unsetenv(keeperListenEnv)
	var f *os.File
	switch {
	case upg.HasParent():
		f, _ = upg.File(keeperChanName)
	case fromKeeper && chanFD == strconv.Itoa(keeperChanFD):
		unix.CloseOnExec(keeperChanFD)
		f = os.NewFile(keeperChanFD, "keeper channel")
		if names != "" {
			for i, n := range strings.Split(names, ",") {
				fd := keeperListenFD + i
				unix.CloseOnExec(fd)
				if checkSocketName(n) != nil || !isListening(fd) {
					log.Warn().Str(logkey.Addr, n).Msg("a socket the keeper held is not a listening socket: ignored")
					_ = unix.Close(fd)
					continue
				}
				l.inherited[n] = fd
			}
		}
	}
	if f == nil {
		return l
	}
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		log.Warn().Err(err).Msg("the keeper's channel is unusable: the keeper will not hold the sockets")
		return l
	}
	uc, ok := c.(*net.UnixConn)
	if !ok {
		_ = c.Close()
		return l
	}
	l.conn = uc
	if err := upg.AddFile(keeperChanName, f); err != nil {
		log.Warn().Err(err).Msg("the next generation will not inherit the keeper's channel")
	}
	return l
}

// listen listens through tableflip (which returns the previous
// generation's socket), on the socket the keeper held for addr, or on a
// new one, and remembers it for hold.
func (l *keeperLink) listen(upg upgrader, network, addr string) (net.Listener, error) {
	if l == nil {
		return upg.Listen(network, addr)
	}
	name := network + ":" + addr
	ln, err := upg.ListenWithCallback(network, addr, func(network, addr string) (net.Listener, error) {
		if fd, ok := l.inherited[name]; ok {
			delete(l.inherited, name)
			f := os.NewFile(uintptr(fd), name)
			defer f.Close()
			ln, err := net.FileListener(f)
			if err == nil {
				l.log.Info().Str(logkey.Addr, addr).Msg("listening on the socket the keeper held")
				return ln, nil
			}
			l.log.Warn().Err(err).Str(logkey.Addr, addr).Msg("the socket the keeper held is unusable: listening anew")
		}
		return net.Listen(network, addr)
	})
	if err == nil {
		l.listening = append(l.listening, namedListener{name, ln})
	}
	return ln, err
}

// hold hands this generation's listening sockets to the keeper, which
// lets go of those it held before, and closes the keeper's sockets this
// generation does not listen on. Called once the generation serves.
func (l *keeperLink) hold() {
	if l == nil {
		return
	}
	for n, fd := range l.inherited {
		_ = unix.Close(fd)
		delete(l.inherited, n)
	}
	if l.conn == nil {
		return
	}
	msg := keeperMsg{kind: keeperHold, pid: os.Getpid()}
	var fds []int
	defer func() { closeFDs(fds) }()
	for _, nl := range l.listening {
		fd, err := dupSocket(nl.ln)
		if err != nil {
			l.log.Warn().Err(err).Str(logkey.Addr, nl.name).Msg("the keeper will not hold this socket")
			continue
		}
		fds = append(fds, fd)
		msg.names = append(msg.names, nl.name)
	}
	l.holding = true
	l.queue(msg, fds)
	fds = nil // the sender closes them
}

// superseded records that the next generation serves: the keeper holds
// its sockets, and this generation's release would drop them.
func (l *keeperLink) superseded() {
	if l != nil {
		l.holding = false
	}
}

// release tells the keeper to let go of the sockets (a stop: new
// connections must be refused, and the port freed) and returns at once:
// awaitRelease waits for the keeper. Should the keeper not let go within
// keeperReleaseWait (stopped, or hung), the sockets are shut down from
// here (shutdown(2) acts on the socket itself, the keeper's descriptors
// too): they stop accepting and the port is free, though the keeper
// closes its descriptors only once it runs again. Call it before the
// listeners close: it keeps duplicates of them until then.
func (l *keeperLink) release() {
	if l == nil || l.conn == nil || l.released || !l.holding {
		return
	}
	l.released = true
	var socks []int
	for _, nl := range l.listening {
		if fd, err := dupSocket(nl.ln); err == nil {
			socks = append(socks, fd)
		}
	}
	r, w, err := os.Pipe()
	var wfd int
	if err == nil {
		wfd, err = dupCloexec(int(w.Fd()))
		_ = w.Close()
		if err != nil {
			_ = r.Close()
		}
	}
	if err != nil {
		closeFDs(socks)
		l.log.Warn().Err(err).Msg("asking the keeper to let go of the sockets")
		return
	}
	done := make(chan struct{})
	l.releaseDone = done
	l.queue(keeperMsg{kind: keeperRelease, pid: os.Getpid()}, []int{wfd})
	go func() {
		defer close(done)
		defer r.Close()
		defer closeFDs(socks)
		// The keeper closes its end of the pipe once it has let go: EOF.
		// A keeper that is gone (a send that fails) closed it too.
		_ = r.SetReadDeadline(time.Now().Add(keeperReleaseWait))
		var b [1]byte
		if _, err := r.Read(b[:]); !errors.Is(err, os.ErrDeadlineExceeded) {
			return
		}
		for _, fd := range socks {
			_ = unix.Shutdown(fd, unix.SHUT_RD)
		}
		l.unreleased.Store(true)
		l.log.Warn().Dur(logkey.TimeoutMS, keeperReleaseWait).Msg("the keeper did not let go of the sockets in time: shut down here, so they refuse new connections; the keeper closes them once it runs again")
	}()
}

// awaitRelease waits until the keeper has let go of the sockets after a
// release, or they were shut down without it (at most keeperReleaseWait
// after the release), and reports whether the keeper let go.
func (l *keeperLink) awaitRelease() bool {
	if l == nil || l.releaseDone == nil {
		return true
	}
	<-l.releaseDone
	return !l.unreleased.Load()
}

// keeperOut is a message for the sender, with the descriptors it closes
// once sent.
type keeperOut struct {
	msg keeperMsg
	fds []int
}

// queue hands a message to the link's sender, which sends it in order on
// a goroutine of its own: the master's loop never waits for the keeper,
// also when a stopped keeper leaves the channel's queue full (a send then
// waits until the keeper reads). A generation sends two messages at most
// (hold, release), so the queue never fills; were it full, the message
// would be dropped and said so.
func (l *keeperLink) queue(m keeperMsg, fds []int) {
	l.sendOnce.Do(func() {
		l.out = make(chan keeperOut, 4)
		go l.sender(l.out)
	})
	select {
	case l.out <- keeperOut{m, fds}:
	default:
		closeFDs(fds)
		l.log.Warn().Str(logkey.Kind, m.kind).Msg("the keeper's channel is behind: message dropped")
	}
}

// sender sends what queue hands it, in order, each send waiting as long
// as the keeper takes to read.
func (l *keeperLink) sender(out <-chan keeperOut) {
	for o := range out {
		if err := l.send(o.msg, o.fds); err != nil {
			ev := l.log.Warn().Err(err).Str(logkey.Kind, o.msg.kind)
			if o.msg.kind == keeperHold {
				ev.Msg("handing the listening sockets to the keeper failed: a dead master's clients will be refused until it restarts one")
			} else {
				ev.Msg("asking the keeper to let go of the sockets failed")
			}
		}
		closeFDs(o.fds)
	}
}

func (l *keeperLink) send(m keeperMsg, fds []int) error {
	var oob []byte
	if len(fds) > 0 {
		oob = unix.UnixRights(fds...)
	}
	_, _, err := l.conn.WriteMsgUnix(m.encode(), oob, nil)
	if errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) {
		return fmt.Errorf("the keeper is gone: %w", err)
	}
	return err
}

// dupSocket returns a close-on-exec duplicate of ln's descriptor, taken
// through SyscallConn so that the socket stays non-blocking.
func dupSocket(ln net.Listener) (int, error) {
	sc, ok := ln.(syscall.Conn)
	if !ok {
		return -1, fmt.Errorf("listener %T has no file descriptor", ln)
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("duplicating listener: %w", err)
	}
	fd, dupErr := -1, error(nil)
	if err := raw.Control(func(f uintptr) { fd, dupErr = dupCloexec(int(f)) }); err != nil {
		return -1, fmt.Errorf("duplicating listener: %w", err)
	}
	if dupErr != nil {
		return -1, fmt.Errorf("duplicating listener: %w", dupErr)
	}
	return fd, nil
}
