package configs

import (
	"errors"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
)

// TestExplainListen: a refused bind below 1024 says what to do, whether
// the error's chain is whole (net.Listen) or only its text is left
// (tableflip); any other error is left as it is.
func TestExplainListen(t *testing.T) {
	denied := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}
	flat := errors.New("can't create new listener: " + denied.Error()) // as tableflip makes it
	for _, err := range []error{denied, flat} {
		if got := ExplainListen("127.0.0.1:80", err); !strings.Contains(got.Error(), "CAP_NET_BIND_SERVICE") {
			t.Errorf("ExplainListen(%v) = %v, want the capability named", err, got)
		}
		// Above 1023 no capability helps: something else refused.
		if got := ExplainListen("127.0.0.1:9100", err); got.Error() != err.Error() {
			t.Errorf("ExplainListen(:9100, %v) = %v, want it unchanged", err, got)
		}
	}
	inUse := &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}
	if got := ExplainListen("127.0.0.1:80", inUse); !errors.Is(got, syscall.EADDRINUSE) || got.Error() != inUse.Error() {
		t.Errorf("ExplainListen(%v) = %v, want it unchanged", inUse, got)
	}
}
