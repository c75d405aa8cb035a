package worker

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/rs/zerolog"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/ipc"
)

// TestLoopNeverWaitsForTheMaster: once the master stops reading (SIGSTOP,
// a stall), the worker's loop still takes every event: its stats beats,
// a config the master pushed just before, and the signal to stop, on
// which it drains and Run returns.
func TestLoopNeverWaitsForTheMaster(t *testing.T) {
	t.Parallel()
	tg := echoTarget(t)
	for _, tc := range []struct {
		desc string
		// push is what the master sends before it stops reading.
		push func(t *testing.T, master *ipc.Conn)
	}{
		{desc: "stats beats", push: func(*testing.T, *ipc.Conn) {}},
		{desc: "a config push and its ack", push: func(t *testing.T, master *ipc.Conn) {
			if err := master.Send(ipc.KindConfig, ipc.Config{Revision: 2, Snapshot: testSnapshot(t, tg.URL, 2)}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			workerEnd, masterEnd := net.Pipe() // synchronous: a write waits for a read
			t.Cleanup(func() { _ = masterEnd.Close() })
			master := ipc.NewConn(masterEnd)
			beat := make(chan time.Time) // unbuffered: a beat given is a beat the loop took
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			go func() {
				done <- Run(ctx, Options{Logger: zerolog.Nop(), Listener: ln, Conn: ipc.NewConn(workerEnd), statsBeat: beat})
			}()
			if f, err := master.Recv(); err != nil || f.Kind != ipc.KindHello {
				t.Fatalf("first frame %v %v", f.Kind, err)
			}
			if err := master.Send(ipc.KindConfig, ipc.Config{Revision: 1, Snapshot: testSnapshot(t, tg.URL, 1)}); err != nil {
				t.Fatal(err)
			}
			for _, want := range []ipc.Kind{ipc.KindAck, ipc.KindReady} {
				if f, err := master.Recv(); err != nil || f.Kind != want {
					t.Fatalf("got %v %v, want %s", f.Kind, err, want)
				}
			}
			tc.push(t, master)
			// From here on the master reads nothing.
			for i := range 3 {
				select {
				case beat <- time.Now():
				case <-time.After(10 * time.Second):
					t.Fatalf("stats beat %d: the loop waits for a master that does not read", i+1)
				}
			}
			stop()
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the worker did not drain and exit while the master does not read")
			}
		})
	}
}

// testSnapshot is the routes config with TARGET replaced by target, as
// revision rev, encoded.
func testSnapshot(t *testing.T, target string, rev uint64) []byte {
	t.Helper()
	snap, err := configs.Parse([]byte(strings.ReplaceAll(routes, "TARGET", target)), env)
	if err != nil {
		t.Fatal(err)
	}
	snap.Revision = rev
	b, err := snap.Encode()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestDrainLeavesTheLoopRunning: while a worker drains, whoever asked it
// to (a SIGTERM sent to the worker itself, or the master), and a request
// holds the drain open, the loop goes on: it takes its stats beats and
// sends them marked draining (a drain may outlast the master's silence
// limit), reads the master's frames (it applies and acks a config
// revision, takes a second drain order as a no-op) and so hands on the
// API-key answers behind them; once the last request is answered, Run
// returns.
func TestDrainLeavesTheLoopRunning(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		desc  string
		drain func(t *testing.T, stop context.CancelFunc, master *ipc.Conn)
	}{
		{desc: "SIGTERM to the worker", drain: func(_ *testing.T, stop context.CancelFunc, _ *ipc.Conn) { stop() }},
		{desc: "the master's order", drain: func(t *testing.T, _ context.CancelFunc, master *ipc.Conn) {
			if err := master.Send(ipc.KindDrain, ipc.Drain{Grace: time.Second, Timeout: time.Minute}); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			// The target holds its request until the test lets it go.
			held, release := make(chan struct{}, 1), make(chan struct{})
			tg := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
				held <- struct{}{}
				select {
				case <-release:
				case <-r.Context().Done():
				}
				_, _ = io.WriteString(rw, "late")
			}))
			t.Cleanup(tg.Close)
			defer close(release) // before tg.Close, on a failure too

			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			master, child, err := ipc.Pair()
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = master.Close() })
			workerConn, err := ipc.FileConn(child)
			if err != nil {
				t.Fatal(err)
			}
			beat := make(chan time.Time) // unbuffered: a beat given is a beat the loop took
			w := newWorker(Options{Logger: zerolog.Nop(), Listener: ln, Conn: workerConn, statsBeat: beat})
			ctx, stop := context.WithCancel(context.Background())
			defer stop()
			done := make(chan error, 1)
			go func() { done <- w.run(ctx) }()

			frames := make(chan ipc.Frame, 64)
			go func() {
				defer close(frames)
				for {
					f, err := master.Recv()
					if err != nil {
						return
					}
					frames <- f
				}
			}()
			next := func(want ipc.Kind) ipc.Frame {
				t.Helper()
				timeout := time.After(10 * time.Second)
				for {
					select {
					case f, ok := <-frames:
						if !ok {
							t.Fatalf("the channel ended before a %s frame", want)
						}
						if f.Kind == want {
							return f
						}
					case <-timeout:
						t.Fatalf("no %s frame from the worker", want)
					}
				}
			}
			next(ipc.KindHello)
			if err := master.Send(ipc.KindConfig, ipc.Config{Revision: 1, Snapshot: testSnapshot(t, tg.URL, 1)}); err != nil {
				t.Fatal(err)
			}
			next(ipc.KindReady)

			answered := make(chan string, 1)
			go func() {
				resp, err := http.Get("http://" + ln.Addr().String() + "/hello/held")
				if err != nil {
					answered <- err.Error()
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				answered <- strconv.Itoa(resp.StatusCode) + " " + string(b)
			}()
			<-held
			tc.drain(t, stop, master)
			for deadline := time.Now().Add(10 * time.Second); w.phase.load() != phaseDraining; time.Sleep(time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatalf("phase %d, want draining", w.phase.load())
				}
			}

			// Stats beats go on, marked draining.
			for i := range 3 {
				select {
				case beat <- time.Now():
				case <-time.After(10 * time.Second):
					t.Fatalf("stats beat %d: the loop takes no beat while it drains", i+1)
				}
				var s ipc.Stats
				if err := next(ipc.KindStats).Decode(&s); err != nil || !s.Draining || s.Active != 1 {
					t.Fatalf("stats during the drain: %+v %v, want draining with 1 connection", s, err)
				}
			}

			// An API key asked now; its answer comes behind a config
			// revision and a second drain order.
			key := make(chan string, 1)
			go func() {
				kctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				tok, err := w.keys.ask(kctx, "the-key")
				if err != nil {
					tok = err.Error()
				}
				key <- tok
			}()
			var ask ipc.KeyAsk
			if err := next(ipc.KindKeyAsk).Decode(&ask); err != nil {
				t.Fatal(err)
			}
			for _, f := range []struct {
				kind ipc.Kind
				msg  any
			}{
				{ipc.KindConfig, ipc.Config{Revision: 2, Snapshot: testSnapshot(t, tg.URL, 2)}},
				{ipc.KindDrain, ipc.Drain{Grace: 0, Timeout: time.Millisecond}},
				{ipc.KindKeyTell, ipc.KeyTell{ID: ask.ID, Token: "the-token"}},
			} {
				if err := master.Send(f.kind, f.msg); err != nil {
					t.Fatal(err)
				}
			}
			if got := <-key; got != "the-token" {
				t.Fatalf("the key's answer during the drain: %q, want the-token", got)
			}
			var ack ipc.Ack
			if err := next(ipc.KindAck).Decode(&ack); err != nil || ack.Revision != 2 || ack.Error != "" {
				t.Fatalf("ack of a config during the drain: %+v %v, want revision 2", ack, err)
			}
			// The second order changed nothing: the request is still held.
			select {
			case beat <- time.Now():
			case <-time.After(10 * time.Second):
				t.Fatal("the loop takes no beat after a second drain order")
			}
			var s ipc.Stats
			if err := next(ipc.KindStats).Decode(&s); err != nil || !s.Draining || s.Active != 1 {
				t.Fatalf("stats after a second drain order: %+v %v, want draining with 1 connection", s, err)
			}

			release <- struct{}{}
			if got := <-answered; got != "200 late" {
				t.Fatalf("the request held through the drain: %s, want 200 late", got)
			}
			select {
			case err := <-done:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("the worker did not exit once its last request was answered")
			}
			if p := w.phase.load(); p != phaseStopped {
				t.Fatalf("phase after Run: %d, want stopped", p)
			}
		})
	}
}
