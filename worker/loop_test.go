package worker

import (
	"context"
	"net"
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
