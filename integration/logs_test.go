package integration

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestLogsReopenAndNeverHoldKeys: with logging.dir and the access log, a
// request with an API key (header and query) leaves no trace of the key
// in any log file; after the log file is moved away, SIGUSR1 makes a new
// one that gets the next lines, the workers' included.
func TestLogsReopenAndNeverHoldKeys(t *testing.T) {
	tgt, _ := countingTarget(t)
	in := newInstance(t, "")
	if out, code := in.mgw("init"); code != 0 {
		t.Fatal(out)
	}
	logDir := filepath.Join(in.dir, "logs")
	in.writeConfig(strings.Replace(localAuthConfig(tgt.URL, `["oauth"]`, "", ""), `[edgemicro.logging]
level = "info"
to_console = true`, `[edgemicro.logging]
level = "debug"
dir = "`+logDir+`"
access_log = true`, 1))
	in.start(2)
	const key = "limits-key"
	if a := call(t, "GET", in.url("/api/x?x-api-key="+key), map[string]string{"x-api-key": key}, ""); a.status != 200 {
		t.Fatalf("with a key: %d %s", a.status, a.body)
	}
	logPath := filepath.Join(logDir, "mgw.log")
	in.eventually(5*time.Second, "the access log line", func() bool {
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), `"path":"/api/x"`)
	})
	st, _ := in.status()
	// Move the file away, as logrotate does, and signal.
	if err := os.Rename(logPath, logPath+".moved"); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Kill(st.MasterPID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	in.eventually(5*time.Second, "a new log file", func() bool { _, err := os.Stat(logPath); return err == nil })
	// The next requests, on new connections over both workers, log to it.
	in.eventually(5*time.Second, "a worker's line in the new file", func() bool {
		call(t, "GET", in.url("/api/after"), map[string]string{"x-api-key": key}, "")
		b, _ := os.ReadFile(logPath)
		return strings.Contains(string(b), `"path":"/api/after"`)
	})
	after, _ := in.status()
	if after.MasterPID != st.MasterPID || len(pidsOf(after)) != 2 || !slices.Equal(pidsOf(after), pidsOf(st)) {
		t.Fatalf("SIGUSR1 changed the processes: %v → %v", pidsOf(st), pidsOf(after))
	}
	files, _ := filepath.Glob(filepath.Join(logDir, "*"))
	for _, f := range files {
		b, _ := os.ReadFile(f)
		if strings.Contains(string(b), key) {
			t.Fatalf("%s holds the API key", f)
		}
	}
}

// TestHeaderLimitLeavesTheWorkerUnharmed: a 16 KiB header gets 431, and
// the next request gets 200 from the same worker processes.
func TestHeaderLimitLeavesTheWorkerUnharmed(t *testing.T) {
	tgt, _ := countingTarget(t)
	in := newInstance(t, proxyConfig(tgt.URL))
	in.start(2)
	before, _ := in.status()
	a := call(t, "GET", in.url("/api/x"), map[string]string{"X-Big": strings.Repeat("a", 16<<10)}, "")
	if a.status != 431 {
		t.Fatalf("16 KiB header: %d %s", a.status, a.body)
	}
	if st, _ := get(t, in.url("/api/x")); st != 200 {
		t.Fatalf("after the 431: %d", st)
	}
	after, _ := in.status()
	if !slices.Equal(pidsOf(before), pidsOf(after)) {
		t.Fatalf("worker pids changed: %v → %v", pidsOf(before), pidsOf(after))
	}
}

// TestDemoKey: the file `mgw init` writes (the embedded default) with
// apikeys turned on serves the documented demo key.
func TestDemoKey(t *testing.T) {
	in := newInstance(t, "")
	if out, code := in.mgw("init"); code != 0 {
		t.Fatal(out)
	}
	b, err := os.ReadFile(filepath.Join(in.dir, "mgw.toml"))
	if err != nil {
		t.Fatal(err)
	}
	in.writeConfig(strings.Replace(strings.Replace(string(b), "sequence = []", `sequence = ["apikeys"]`, 1), "port = 8000", "port = ${PORT}", 1))
	in.start(1)
	if a := call(t, "GET", in.url("/echo/hello"), map[string]string{"x-api-key": "mgw-demo-key"}, ""); a.status != 200 {
		t.Fatalf("with the demo key: %d %s", a.status, a.body)
	}
	if a := call(t, "GET", in.url("/echo/hello"), nil, ""); a.status != 401 {
		t.Fatalf("without a key: %d %s", a.status, a.body)
	}
}

// TestVerifyLocalConfig: in local mode, verify checks the config file.
func TestVerifyLocalConfig(t *testing.T) {
	in := newInstance(t, proxyConfig("http://127.0.0.1:1"))
	if out, code := in.mgw("verify"); code != 0 || !strings.Contains(out, "ok   config") {
		t.Fatalf("a good local config: %d\n%s", code, out)
	}
	in.writeConfig(proxyConfig("http://127.0.0.1:1") + "\n[edgemicro.plugins]\nsequence = [\"nosuch\"]\n")
	if out, code := in.mgw("verify"); code != 1 || !strings.Contains(out, `FAIL config`) || !strings.Contains(out, `unknown plugin "nosuch"`) {
		t.Fatalf("a config naming an unknown plugin: %d\n%s", code, out)
	}
}
