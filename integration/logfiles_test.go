package integration

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/testutil"
)

// TestLogSizeCapHoldsUnderLoad: with max_size_mb = 1, two workers under
// load write access log lines until the log has rotated twice, to mgw.log
// or to access_log_file. No file ever passes the cap, every line of every
// file is one whole JSON object (the workers never cut each other's
// lines), every request has its line, and with access_log_file the access
// lines are all there and none in mgw.log.
func TestLogSizeCapHoldsUnderLoad(t *testing.T) {
	for _, tc := range []struct {
		name, file string // file: access_log_file, "" for mgw.log
	}{
		{"in mgw.log", ""},
		{"in access_log_file", "access.log"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInstance(t, "")
			logDir := filepath.Join(in.dir, "logs")
			cfg := `
[edgemicro]
port = ${PORT}
address = "127.0.0.1"
[edgemicro.logging]
level = "info"
dir = "` + logDir + `"
access_log = true
max_size_mb = 1
max_files = 100
`
			accessPath := filepath.Join(logDir, "mgw.log")
			if tc.file != "" {
				cfg += "access_log_file = \"" + tc.file + "\"\n"
				accessPath = filepath.Join(logDir, tc.file)
			}
			in.writeConfig(cfg)
			in.start(2)
			// Paths of 3000 bytes that match no proxy: each request is one
			// access line of about 3 KB, so a few hundred fill a file.
			long := "/nomatch/" + strings.Repeat("p", 3000)
			client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 8}}
			load := testutil.StartLoad(8, func(i int) error {
				resp, err := client.Get(in.url(fmt.Sprintf("%s/%d", long, i)))
				if err != nil {
					return err
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
				if resp.StatusCode != http.StatusNotFound {
					return fmt.Errorf("status %d", resp.StatusCode)
				}
				return nil
			})
			ok := testutil.Poll(60*time.Second, func() bool {
				_, err := os.Stat(accessPath + ".2")
				return err == nil
			})
			load.Stop()
			if !ok {
				t.Fatalf("the log never rotated twice (%d requests)", load.OK.Load())
			}
			if load.Failed.Load() > 0 {
				t.Fatalf("%d requests failed", load.Failed.Load())
			}
			if out, code := in.mgw("stop"); code != 0 { // the workers write their last lines
				t.Fatalf("stop: %s", out)
			}
			const limit = 1 << 20
			requests := 0
			files, _ := filepath.Glob(filepath.Join(logDir, "*"))
			for _, f := range files {
				st, err := os.Stat(f)
				if err != nil {
					t.Fatal(err)
				}
				if st.Size() > limit {
					t.Errorf("%s has %d bytes, past max_size_mb = 1 (%d)", f, st.Size(), limit)
				}
				isAccess := strings.HasPrefix(filepath.Base(f), filepath.Base(accessPath))
				fh, err := os.Open(f)
				if err != nil {
					t.Fatal(err)
				}
				sc := bufio.NewScanner(fh)
				sc.Buffer(nil, 1<<20)
				for sc.Scan() {
					var line struct {
						Msg  string `json:"message"`
						Path string `json:"path"`
					}
					if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
						t.Fatalf("%s: a line that is not JSON (%v): %.200q", f, err, sc.Text())
					}
					if strings.HasPrefix(line.Path, long) {
						if !isAccess {
							t.Fatalf("%s holds an access line, want them in %s", f, accessPath)
						}
						requests++
					}
				}
				if err := sc.Err(); err != nil {
					t.Fatal(err)
				}
				_ = fh.Close()
			}
			if int64(requests) != load.OK.Load() {
				t.Fatalf("%d access lines for %d requests", requests, load.OK.Load())
			}
			if tc.file != "" {
				b, err := os.ReadFile(filepath.Join(logDir, "mgw.log"))
				if err != nil || !strings.Contains(string(b), `"worker"`) {
					t.Fatalf("mgw.log holds no worker's lines (%v): %.300s", err, b)
				}
			}
		})
	}
}

// TestAccessLogFileReopens: with access_log_file and no size cap, the
// access log file moved away (as logrotate does) and SIGUSR1 to the
// master make every worker write the next lines to a new file at the
// path; the moved file keeps the earlier lines.
func TestAccessLogFileReopens(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	logDir := filepath.Join(in.dir, "logs")
	in.writeConfig(`
[edgemicro]
port = ${PORT}
address = "127.0.0.1"
[edgemicro.logging]
dir = "` + logDir + `"
access_log = true
access_log_file = "access.log"
`)
	in.start(2)
	path := filepath.Join(logDir, "access.log")
	holds := func(file, what string) bool {
		b, _ := os.ReadFile(file)
		return strings.Contains(string(b), what)
	}
	in.eventually(10*time.Second, "a line in access.log", func() bool {
		in.getEach(1, 1, "/before", http.StatusNotFound)
		return holds(path, `"path":"/before"`)
	})
	if err := os.Rename(path, path+".moved"); err != nil {
		t.Fatal(err)
	}
	st, _ := in.status()
	if err := syscall.Kill(st.MasterPID, syscall.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	// Each worker writes to the new file once it has reopened; the
	// kernel picks which worker accepts, so ask until both have.
	writers := func(file string) map[int]bool {
		pids := map[int]bool{}
		b, _ := os.ReadFile(file)
		for _, l := range strings.Split(string(b), "\n") {
			var line struct {
				PID int `json:"pid"`
			}
			if json.Unmarshal([]byte(l), &line) == nil && line.PID != 0 {
				pids[line.PID] = true
			}
		}
		return pids
	}
	in.eventually(20*time.Second, "both workers' lines in the new access.log", func() bool {
		in.getEach(1, 4, "/after/%d", http.StatusNotFound)
		return len(writers(path)) == 2
	})
	moved, err := os.Stat(path + ".moved")
	if err != nil {
		t.Fatal(err)
	}
	in.getEach(1, 20, "/later/%d", http.StatusNotFound)
	in.eventually(10*time.Second, "the later lines in access.log", func() bool { return holds(path, `"path":"/later/20"`) })
	if now, _ := os.Stat(path + ".moved"); now.Size() != moved.Size() {
		t.Fatalf("the moved file grew from %d to %d bytes after both workers reopened", moved.Size(), now.Size())
	}
	if holds(filepath.Join(logDir, "mgw.log"), `"path":"/`) {
		t.Fatal("mgw.log holds access lines")
	}
}

// TestLogLockHeldElsewhereHangsNothing: another process holds the log
// dir's lock and never lets it go, as a SIGSTOPped worker holding it
// does. With max_size_mb set, requests are still answered (the workers'
// access lines go out without the lock), `mgw status` and `mgw stop`
// answer (the master's loop never waits for the lock), and the log says
// the lock was not taken.
func TestLogLockHeldElsewhereHangsNothing(t *testing.T) {
	t.Parallel()
	in := newInstance(t, "")
	logDir := filepath.Join(in.dir, "logs")
	in.writeConfig(`
[edgemicro]
port = ${PORT}
address = "127.0.0.1"
[edgemicro.logging]
level = "info"
dir = "` + logDir + `"
access_log = true
max_size_mb = 1
`)
	in.start(2)
	held, err := os.Open(logDir)
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	if err := syscall.Flock(int(held.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 10 * time.Second}
	for i := range 20 {
		resp, err := client.Get(in.url(fmt.Sprintf("/nomatch/%d", i)))
		if err != nil {
			t.Fatalf("request %d with the log lock held elsewhere: %v", i, err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		_ = resp.Body.Close()
	}
	if out, code := in.mgw("status"); code != 0 {
		t.Fatalf("status with the log lock held elsewhere: exit %d:\n%s", code, out)
	}
	in.eventually(15*time.Second, "a warning that the log lock was not taken", func() bool {
		b, _ := os.ReadFile(filepath.Join(logDir, "mgw.log"))
		return strings.Contains(string(b), "log lines written without the log directory lock")
	})
	in.stop()
}
