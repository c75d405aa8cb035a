package master

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/rs/zerolog"
	"golang.org/x/sys/unix"

	"github.com/mgw-gateway/mgw/ipc"
)

func TestDecodeKeeperMsg(t *testing.T) {
	for _, tc := range []struct {
		name, in string
		nfds     int
		want     keeperMsg
		err      string
	}{
		{"hold", "mgw-keeper 1 hold 42\ntcp:127.0.0.1:8000\ntcp::9000\n", 2, keeperMsg{kind: keeperHold, pid: 42, names: []string{"tcp:127.0.0.1:8000", "tcp::9000"}}, ""},
		{"hold ipv6", "mgw-keeper 1 hold 7\ntcp6:[::1]:80\n", 1, keeperMsg{kind: keeperHold, pid: 7, names: []string{"tcp6:[::1]:80"}}, ""},
		{"hold nothing", "mgw-keeper 1 hold 7\n", 0, keeperMsg{kind: keeperHold, pid: 7, names: []string{}}, ""},
		{"release", "mgw-keeper 1 release 9\n", 1, keeperMsg{kind: keeperRelease, pid: 9}, ""},
		{"more names than descriptors", "mgw-keeper 1 hold 42\ntcp::1\ntcp::2\n", 1, keeperMsg{}, "2 names for 1"},
		{"fewer names than descriptors", "mgw-keeper 1 hold 42\ntcp::1\n", 2, keeperMsg{}, "1 names for 2"},
		{"release without its descriptor", "mgw-keeper 1 release 9\n", 0, keeperMsg{}, "a release with"},
		{"release with names", "mgw-keeper 1 release 9\ntcp::1\n", 1, keeperMsg{}, "a release with"},
		{"other version", "mgw-keeper 2 hold 42\n", 0, keeperMsg{}, "bad head"},
		{"unknown kind", "mgw-keeper 1 grab 42\n", 0, keeperMsg{}, "unknown kind"},
		{"bad pid", "mgw-keeper 1 hold -1\n", 0, keeperMsg{}, "bad pid"},
		{"padded pid", "mgw-keeper 1 hold 042\n", 0, keeperMsg{}, "bad pid"},
		{"double space", "mgw-keeper  1 hold 42\n", 0, keeperMsg{}, "bad head"},
		{"no newline", "mgw-keeper 1 hold 42", 0, keeperMsg{}, "newline"},
		{"unix socket", "mgw-keeper 1 hold 42\nunix:/tmp/x\n", 1, keeperMsg{}, "not tcp"},
		{"no port", "mgw-keeper 1 hold 42\ntcp:127.0.0.1\n", 1, keeperMsg{}, "bad address"},
		{"comma", "mgw-keeper 1 hold 42\ntcp:a,b:1\n", 1, keeperMsg{}, "bad address"},
		{"too many", "mgw-keeper 1 hold 42\n" + strings.Repeat("tcp::1\n", keeperMaxSockets+1), keeperMaxSockets + 1, keeperMsg{}, "names for"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := decodeKeeperMsg([]byte(tc.in), tc.nfds)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want one with %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got.kind != tc.want.kind || got.pid != tc.want.pid || strings.Join(got.names, "|") != strings.Join(tc.want.names, "|") {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
			if string(got.encode()) != tc.in {
				t.Fatalf("encodes as %q, decoded from %q", got.encode(), tc.in)
			}
		})
	}
}

func FuzzDecodeKeeperMsg(f *testing.F) {
	f.Add([]byte("mgw-keeper 1 hold 42\ntcp:127.0.0.1:8000\n"), 1)
	f.Add([]byte("mgw-keeper 1 release 9\n"), 1)
	f.Add([]byte("mgw-keeper 1 hold 1\ntcp6:[::1]:80\ntcp::9\n"), 2)
	f.Fuzz(func(t *testing.T, b []byte, nfds int) {
		m, err := decodeKeeperMsg(b, nfds)
		if err != nil {
			return
		}
		// What is accepted is what an encoder writes, with a name per
		// descriptor, each one a master can listen on again.
		if string(m.encode()) != string(b) {
			t.Fatalf("accepted %q, which encodes as %q", b, m.encode())
		}
		if m.kind == keeperHold && len(m.names) != nfds {
			t.Fatalf("%d names for %d descriptors", len(m.names), nfds)
		}
		for _, n := range m.names {
			if strings.Contains(n, ",") {
				t.Fatalf("name %q would not pass through %s", n, keeperListenEnv)
			}
		}
	})
}

// linkTo returns a master's link on ch, as a master the keeper started has.
// testKeeperChannel makes a keeper's channel closed when the test ends.
func testKeeperChannel(t *testing.T) *keeperChannel {
	t.Helper()
	ch, err := newKeeperChannel()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ch.close)
	return ch
}

func linkTo(t *testing.T, ch *keeperChannel) *keeperLink {
	t.Helper()
	c, err := net.FileConn(ch.child)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return &keeperLink{log: zerolog.Nop(), conn: c.(*net.UnixConn), inherited: map[string]int{}}
}

func delivery(t *testing.T, ch *keeperChannel) keeperDelivery {
	t.Helper()
	select {
	case d := <-ch.msgs:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no message reached the keeper")
		return keeperDelivery{}
	}
}

// TestKeeperChannelHoldAndRelease: a serving master's hold hands the
// keeper its very listening sockets; a release waits until the keeper has
// let go.
func TestKeeperChannelHoldAndRelease(t *testing.T) {
	ch := testKeeperChannel(t)
	l := linkTo(t, ch)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	name := "tcp:" + ln.Addr().String()
	l.listening = []namedListener{{name, ln}}
	l.hold()
	d := delivery(t, ch)
	if d.err != nil || d.msg.kind != keeperHold || d.msg.pid != os.Getpid() || len(d.fds) != 1 || d.msg.names[0] != name {
		t.Fatalf("hold delivered %+v", d)
	}
	sa, err := unix.Getsockname(d.fds[0])
	if err != nil {
		t.Fatal(err)
	}
	if port := sa.(*unix.SockaddrInet4).Port; port != ln.Addr().(*net.TCPAddr).Port {
		t.Fatalf("the keeper got a socket on port %d, the master listens on %d", port, ln.Addr().(*net.TCPAddr).Port)
	}
	// The master's socket stays non-blocking: the hold must not switch it.
	raw, _ := ln.(*net.TCPListener).SyscallConn()
	_ = raw.Control(func(fd uintptr) {
		if fl, _ := unix.FcntlInt(fd, unix.F_GETFL, 0); fl&unix.O_NONBLOCK == 0 {
			t.Error("the listening socket became blocking")
		}
	})
	closeFDs(d.fds)

	// The release returns at once; awaitRelease waits for the keeper.
	l.release()
	d = delivery(t, ch)
	if d.err != nil || d.msg.kind != keeperRelease || len(d.fds) != 1 {
		t.Fatalf("release delivered %+v", d)
	}
	select {
	case <-l.releaseDone:
		t.Fatal("the release ended before the keeper let go")
	case <-time.After(50 * time.Millisecond):
	}
	closeFDs(d.fds)
	if !l.awaitRelease() {
		t.Fatal("awaitRelease says the keeper did not let go")
	}
}

// TestKeeperChannelRefuses: a hold whose descriptor is no listening
// socket is refused, and its descriptors closed.
func TestKeeperChannelRefuses(t *testing.T) {
	ch := testKeeperChannel(t)
	l := linkTo(t, ch)
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := l.send(keeperMsg{kind: keeperHold, pid: 1, names: []string{"tcp::1"}}, []int{int(w.Fd())}); err != nil {
		t.Fatal(err)
	}
	if d := delivery(t, ch); d.err == nil || !strings.Contains(d.err.Error(), "not a listening socket") || d.fds != nil {
		t.Fatalf("delivered %+v", d)
	}
	if err := l.send(keeperMsg{kind: keeperRelease, pid: 1}, nil); err != nil {
		t.Fatal(err)
	}
	if d := delivery(t, ch); d.err == nil {
		t.Fatalf("a release without its descriptor was delivered: %+v", d)
	}
}

// listeningFD returns a listening socket's bare descriptor, as the keeper
// holds one.
func listeningFD(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	fd, err := dupSocket(ln)
	if err != nil {
		t.Fatal(err)
	}
	return fd
}

func isOpen(fd int) bool {
	_, err := unix.FcntlInt(uintptr(fd), unix.F_GETFD, 0)
	return err == nil
}

// TestKeeperHoldsWhatServes: a hold replaces what the keeper held (the
// generation before listened on another port, perhaps), a release lets
// go and answers, and a hold that comes while stopping is not kept.
func TestKeeperHoldsWhatServes(t *testing.T) {
	k := &keeper{log: zerolog.Nop()}
	first := listeningFD(t)
	k.onMessage(keeperDelivery{msg: keeperMsg{kind: keeperHold, pid: 10, names: []string{"tcp:127.0.0.1:1"}}, fds: []int{first}})
	if len(k.held) != 1 || k.held[0].fd != first {
		t.Fatalf("held %+v", k.held)
	}
	second, metrics := listeningFD(t), listeningFD(t)
	k.onMessage(keeperDelivery{msg: keeperMsg{kind: keeperHold, pid: 11, names: []string{"tcp:127.0.0.1:2", "tcp:127.0.0.1:3"}}, fds: []int{second, metrics}})
	if len(k.held) != 2 || k.held[0].name != "tcp:127.0.0.1:2" || k.held[1].fd != metrics {
		t.Fatalf("held %+v", k.held)
	}
	if isOpen(first) {
		t.Error("the socket of the generation before is still held")
	}
	env, files := keeperFiles(&keeperChannel{child: os.Stdin}, k.held)
	if len(files) != 3 || files[1] != uintptr(second) || files[2] != uintptr(metrics) ||
		strings.Join(env, " ") != keeperChanEnv+"=3 "+keeperListenEnv+"=tcp:127.0.0.1:2,tcp:127.0.0.1:3" {
		t.Fatalf("a restarted master gets %v %v", env, files)
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	wfd, err := unix.Dup(int(w.Fd()))
	if err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	k.onMessage(keeperDelivery{msg: keeperMsg{kind: keeperRelease, pid: 11}, fds: []int{wfd}})
	if len(k.held) != 0 || isOpen(second) || isOpen(metrics) {
		t.Fatalf("a release left %+v held", k.held)
	}
	_ = r.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if n, err := r.Read(b[:]); n != 0 || err != io.EOF {
		t.Fatalf("the releasing master's pipe is still open: %d %v", n, err)
	}

	k.stopping = true
	late := listeningFD(t)
	k.onMessage(keeperDelivery{msg: keeperMsg{kind: keeperHold, pid: 12, names: []string{"tcp:127.0.0.1:4"}}, fds: []int{late}})
	if len(k.held) != 0 || isOpen(late) {
		t.Fatal("a stopping keeper kept a socket")
	}
}

func TestRestartDelay(t *testing.T) {
	for _, tc := range []struct {
		failures int
		stable   bool
		want     time.Duration
	}{
		{0, true, 100 * time.Millisecond}, // served for a while, then died
		{0, false, time.Second},           // died soon after serving
		{1, false, 2 * time.Second},       // the restart did not serve
		{1, true, 2 * time.Second},
		{4, false, 16 * time.Second},
		{5, false, 30 * time.Second},
		{40, false, 30 * time.Second},
	} {
		if got := restartDelay(tc.failures, tc.stable); got != tc.want {
			t.Errorf("restartDelay(%d, %v) = %s, want %s", tc.failures, tc.stable, got, tc.want)
		}
	}
}

// TestStopReleasesOnlyWhatTheKeeperHoldsForThisGeneration: a serving
// generation that stops makes the keeper let go; a replaced one that gets
// SIGQUIT while it drains must not (the keeper holds the next
// generation's sockets: a release would drop them, and a later death of
// the serving master would refuse connections), and neither must one
// that never served.
func TestStopReleasesOnlyWhatTheKeeperHoldsForThisGeneration(t *testing.T) {
	for _, tc := range []struct {
		name    string
		release bool
		prepare func(t *testing.T, m *Master, upg *fakeUpgrader, ch *keeperChannel)
	}{
		{"serving", true, func(t *testing.T, m *Master, _ *fakeUpgrader, ch *keeperChannel) {
			serving(t, m)
			if d := delivery(t, ch); d.msg.kind != keeperHold {
				t.Fatalf("serving sent %+v, want a hold", d)
			}
		}},
		{"replaced", false, func(t *testing.T, m *Master, upg *fakeUpgrader, ch *keeperChannel) {
			serving(t, m)
			if d := delivery(t, ch); d.msg.kind != keeperHold {
				t.Fatalf("serving sent %+v, want a hold", d)
			}
			reply := control(m, ipc.Control{Command: ipc.CommandReload})
			upg.nextUpgrade(t) <- nil
			upgradeOutcome(t, m)
			if rep := replied(t, reply); !rep.OK {
				t.Fatalf("reload: %+v", rep)
			}
			upg.handOver()
			m.onReplaced()
			if m.phase != phaseReplaced {
				t.Fatalf("phase %s, want replaced", m.phase)
			}
		}},
		{"starting", false, func(t *testing.T, m *Master, _ *fakeUpgrader, _ *keeperChannel) {
			snap, err := m.load()
			if err != nil {
				t.Fatal(err)
			}
			m.snap = snap
			m.sup = newSupervisor(1, m.spawner, m.clock, m.log)
			m.sup.startAll()
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ch := testKeeperChannel(t)
			m, upg := newTestMaster(t, 1)
			m.link = linkTo(t, ch)
			tc.prepare(t, m, upg, ch)
			quit := make(chan error, 1)
			go func() { quit <- m.onSignal(syscall.SIGQUIT) }()
			if tc.release {
				d := delivery(t, ch)
				if d.msg.kind != keeperRelease {
					t.Fatalf("SIGQUIT sent %+v, want a release", d)
				}
				closeFDs(d.fds)
			}
			select {
			case err := <-quit:
				if !errors.Is(err, errStopped) {
					t.Fatalf("SIGQUIT: %v, want the end", err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("SIGQUIT did not end the generation")
			}
			// Whatever the generation sent comes before this mark.
			mark := os.Getpid() + 1
			if err := m.link.send(keeperMsg{kind: keeperHold, pid: mark}, nil); err != nil {
				t.Fatal(err)
			}
			if d := delivery(t, ch); d.msg.pid != mark {
				closeFDs(d.fds)
				t.Fatalf("the generation sent the keeper %+v after SIGQUIT", d.msg)
			}
		})
	}
}

// TestKeeperChannelReadsOnAfterEmpty: an empty message is refused, and
// the channel is read on: a release after it still reaches the keeper.
func TestKeeperChannelReadsOnAfterEmpty(t *testing.T) {
	ch := testKeeperChannel(t)
	l := linkTo(t, ch)
	if _, _, err := l.conn.WriteMsgUnix(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	if d := delivery(t, ch); d.err == nil || !strings.Contains(d.err.Error(), "empty") {
		t.Fatalf("an empty message delivered %+v", d)
	}
	// No bytes but a descriptor: refused, and the descriptor closed.
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer pr.Close()
	if _, _, err := l.conn.WriteMsgUnix(nil, unix.UnixRights(int(pw.Fd())), nil); err != nil {
		t.Fatal(err)
	}
	_ = pw.Close()
	if d := delivery(t, ch); d.err == nil || d.fds != nil {
		t.Fatalf("a message of a descriptor alone delivered %+v", d)
	}
	_ = pr.SetReadDeadline(time.Now().Add(5 * time.Second))
	var b [1]byte
	if n, err := pr.Read(b[:]); n != 0 || err != io.EOF {
		t.Fatalf("the keeper kept the descriptor: %d %v", n, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	if err := l.send(keeperMsg{kind: keeperRelease, pid: 9}, []int{int(w.Fd())}); err != nil {
		t.Fatal(err)
	}
	d := delivery(t, ch)
	if d.err != nil || d.msg.kind != keeperRelease || len(d.fds) != 1 {
		t.Fatalf("the release after an empty message delivered %+v", d)
	}
	closeFDs(d.fds)
}

// cmsg returns one control message of level and type with data.
func cmsg(level, typ int32, data []byte) []byte {
	b := make([]byte, unix.CmsgSpace(len(data)))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = level, typ
	h.SetLen(unix.CmsgLen(len(data)))
	copy(b[unix.CmsgLen(0):], data)
	return b
}

// TestRightsIn: every descriptor a control buffer holds is found, also
// past a message of another kind and before a header that is cut short
// or lies about its length, where unix.ParseSocketControlMessage finds
// none.
func TestRightsIn(t *testing.T) {
	rights := func(fds ...int) []byte { return unix.UnixRights(fds...) }
	cat := func(bs ...[]byte) []byte {
		var out []byte
		for _, b := range bs {
			out = append(out, b...)
		}
		return out
	}
	creds := cmsg(unix.SOL_SOCKET, unix.SCM_CREDENTIALS, make([]byte, 12))
	lying := rights(9)
	(*unix.Cmsghdr)(unsafe.Pointer(&lying[0])).SetLen(1 << 20)
	tooShort := rights(9)
	(*unix.Cmsghdr)(unsafe.Pointer(&tooShort[0])).SetLen(4)
	for _, tc := range []struct {
		name string
		oob  []byte
		want []int
	}{
		{"none", nil, nil},
		{"one", rights(5), []int{5}},
		{"three in one", rights(5, 6, 7), []int{5, 6, 7}},
		{"two messages", cat(rights(5), rights(6, 7)), []int{5, 6, 7}},
		{"after credentials", cat(creds, rights(5)), []int{5}},
		{"header cut short", cat(rights(5), rights(6)[:unix.CmsgLen(0)-1]), []int{5}},
		{"data cut short", cat(rights(5), rights(6, 7)[:unix.CmsgLen(0)+6]), []int{5, 6}},
		{"length past the buffer", cat(rights(5), lying), []int{5, 9}},
		{"length below the header", cat(rights(5), tooShort, rights(6)), []int{5}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := rightsIn(tc.oob); fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("rightsIn = %v, want %v", got, tc.want)
			}
		})
	}
}

func FuzzRightsIn(f *testing.F) {
	f.Add(unix.UnixRights(3, 4))
	f.Add(append(unix.UnixRights(3), unix.UnixRights(4, 5)[:unix.CmsgLen(0)+2]...))
	f.Add(cmsg(unix.SOL_SOCKET, unix.SCM_CREDENTIALS, make([]byte, 12)))
	f.Fuzz(func(t *testing.T, oob []byte) {
		fds := rightsIn(oob)
		if len(fds) > len(oob)/4 {
			t.Fatalf("%d descriptors from %d bytes", len(fds), len(oob))
		}
		for _, fd := range fds {
			if fd <= 2 {
				t.Fatalf("descriptor %d", fd)
			}
		}
		// A buffer the kernel could have written is read whole.
		// (ParseUnixRights panics on data that is no whole descriptors.)
		if cmsgs, err := unix.ParseSocketControlMessage(oob); err == nil {
			var want []int
			for _, cm := range cmsgs {
				if len(cm.Data)%4 != 0 {
					return
				}
				if got, err := unix.ParseUnixRights(&cm); err == nil {
					for _, fd := range got {
						if fd > 2 {
							want = append(want, fd)
						}
					}
				}
			}
			if fmt.Sprint(fds) != fmt.Sprint(want) {
				t.Fatalf("rightsIn = %v, ParseUnixRights %v", fds, want)
			}
		}
	})
}

// TestKeeperHoldWaitsForNoStoppedKeeper: with the keeper not reading (a
// SIGSTOPped mgw start) and the channel's queue full, hold returns at
// once, and the sockets reach the keeper once it reads again.
func TestKeeperHoldWaitsForNoStoppedKeeper(t *testing.T) {
	ch := testKeeperChannel(t)
	l := linkTo(t, ch)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	l.listening = []namedListener{{"tcp:" + ln.Addr().String(), ln}}
	raw, err := l.conn.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	filler := keeperMsg{kind: keeperHold, pid: 1}.encode()
	full := 0
	_ = raw.Write(func(fd uintptr) bool {
		for unix.Sendmsg(int(fd), filler, nil, nil, unix.MSG_DONTWAIT) == nil {
			full++
		}
		return true
	})
	if full == 0 {
		t.Fatal("the channel took no message")
	}
	l.hold() // must not wait for the keeper
	for {
		d := delivery(t, ch)
		if d.err != nil {
			t.Fatal(d.err)
		}
		if d.msg.pid == os.Getpid() {
			if len(d.fds) != 1 {
				t.Fatalf("the hold delivered %+v", d)
			}
			closeFDs(d.fds)
			return
		}
	}
}

// TestKeeperStoppedReleaseShutsDown: a keeper that does not let go in
// time (SIGSTOPped) leaves the stopping master to shut the sockets down
// itself: the port refuses new connections though the keeper still holds
// a descriptor of it, and awaitRelease says the keeper did not let go.
func TestKeeperStoppedReleaseShutsDown(t *testing.T) {
	ch := testKeeperChannel(t)
	l := linkTo(t, ch)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	l.listening = []namedListener{{"tcp:" + addr, ln}}
	l.hold()
	held := delivery(t, ch)
	if len(held.fds) != 1 {
		t.Fatalf("hold delivered %+v", held)
	}
	defer closeFDs(held.fds)
	l.release()
	_ = ln.Close() // as closeListener does
	// The keeper does not read the release.
	if l.awaitRelease() {
		t.Fatal("awaitRelease says the keeper let go")
	}
	if c, err := net.DialTimeout("tcp", addr, 5*time.Second); err == nil {
		c.Close()
		t.Fatal("the port accepts a connection after a stop the keeper did not answer")
	} else if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("dial after the stop: %v, want connection refused", err)
	}
	if !isOpen(held.fds[0]) || isListening(held.fds[0]) {
		t.Fatal("the keeper's descriptor should be open and no longer listening")
	}
	d := delivery(t, ch)
	if d.msg.kind != keeperRelease {
		t.Fatalf("delivered %+v, want the release", d)
	}
	closeFDs(d.fds)
}

// TestStopReplySaysTheKeeperDidNotLetGo: mgw stop with the keeper not
// answering says so in its reply, and the port refuses all the same.
func TestStopReplySaysTheKeeperDidNotLetGo(t *testing.T) {
	ch := testKeeperChannel(t)
	m, _ := newTestMaster(t, 1)
	m.link = linkTo(t, ch)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.ln = ln
	m.link.listening = []namedListener{{"tcp:" + ln.Addr().String(), ln}}
	serving(t, m)
	held := delivery(t, ch)
	defer closeFDs(held.fds)
	reply := control(m, ipc.Control{Command: ipc.CommandStop})
	handleUntil(t, m, "the drain", m.sup.allExited)
	if err := m.endIfDrained(); !errors.Is(err, errStopped) {
		t.Fatalf("endIfDrained = %v, want the end", err)
	}
	if rep := replied(t, reply); !rep.OK || rep.Message != stoppedUnreleased {
		t.Fatalf("stop reply = %+v", rep)
	}
	if c, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second); err == nil {
		c.Close()
		t.Fatal("the port accepts after the stop")
	}
	closeFDs(delivery(t, ch).fds)
}
