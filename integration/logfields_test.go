package integration

import (
	"encoding/json"
	"errors"
	"io"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
	"github.com/mgw-gateway/mgw/internal/logkey"
)

// TestEveryLogLineSaysWhoWroteIt: through a start, requests, a reload
// and a stop, every line the keeper, the masters and the workers write
// to the one stream is a JSON object that names each field once, says
// which kind of process wrote it and its pid, reports an error under
// the one error key, and uses only fields the operators' table documents.
func TestEveryLogLineSaysWhoWroteIt(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		// instance starts an instance and returns the path of a proxy.
		instance func(t *testing.T) (*instance, string)
	}{
		{"local", func(t *testing.T) (*instance, string) {
			in := newInstance(t, strings.Replace(proxyConfig(target(t).URL), "to_console = true", "to_console = false\naccess_log = true", 1))
			in.start(2)
			return in, "/api/x"
		}},
		// Edge mode: the master polls Edge and runs the analytics
		// plugin's queue.
		{"edge with analytics", func(t *testing.T) (*instance, string) {
			fe := startFakeEdge(t)
			fe.SetProxies(fakeedge.Proxy{Name: "edgemicro_hello", BasePath: "/hello", URL: target(t).URL})
			cfg := strings.Replace(edgeConfigNoAuth(fe), "to_console = true", "to_console = false\naccess_log = true", 1)
			in := newInstance(t, cfg+"\n[analytics]\nflushInterval = 100\nbatchSize = 64\n")
			in.start(2, edgeFlags(fe)...)
			return in, "/hello/x"
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			in, path := tc.instance(t)
			checkLogLines(t, in, path)
		})
	}
}

// checkLogLines sends requests to in, reloads and stops it, and checks
// every line of its log.
func checkLogLines(t *testing.T, in *instance, path string) {
	if code, _ := get(t, in.url(path)); code != 200 {
		t.Fatalf("GET %s = %d", path, code)
	}
	if code, _ := get(t, in.url("/nowhere")); code != 404 {
		t.Fatalf("GET /nowhere = %d", code)
	}
	if out, code := in.mgw("reload"); code != 0 {
		t.Fatalf("reload exited %d:\n%s", code, out)
	}
	in.waitServing(2)
	if code, _ := get(t, in.url(path)); code != 200 {
		t.Fatalf("GET %s after the reload = %d", path, code)
	}
	if out, code := in.mgw("stop", "--timeout", "5s"); code != 0 {
		t.Fatalf("stop exited %d:\n%s", code, out)
	}
	in.eventually(15*time.Second, "the keeper's last line", func() bool {
		return strings.Contains(in.logs.String(), "instance stopped")
	})

	documented := documentedFields(t)
	components := map[string]int{}
	for i, line := range strings.Split(strings.TrimSpace(in.logs.String()), "\n") {
		fields, err := decodeLine(line)
		if err != nil {
			t.Errorf("line %d: %v: %s", i+1, err, line)
			continue
		}
		c, _ := fields[logkey.Component].(string)
		switch c {
		case logkey.ComponentKeeper, logkey.ComponentMaster, logkey.ComponentWorker, logkey.ComponentCLI:
			components[c]++
		default:
			t.Errorf("line %d has component %q, want keeper, master, worker or cli: %s", i+1, c, line)
		}
		if pid, _ := fields[logkey.PID].(float64); pid <= 0 {
			t.Errorf("line %d has no pid: %s", i+1, line)
		}
		if _, ok := fields["err"]; ok {
			t.Errorf("line %d has an error under err, not %s: %s", i+1, logkey.Error, line)
		}
		for k := range fields {
			if !documented[k] {
				t.Errorf("line %d has the field %s, which the Log fields table of docs/OPERATIONS.md does not list: %s", i+1, k, line)
			}
		}
	}
	for _, c := range []string{logkey.ComponentKeeper, logkey.ComponentMaster, logkey.ComponentWorker} {
		if components[c] == 0 {
			t.Errorf("no line of component %s in the log", c)
		}
	}
}

// documentedFields reads the field names of the Log fields table of
// docs/OPERATIONS.md.
func documentedFields(t *testing.T) map[string]bool {
	t.Helper()
	b, err := os.ReadFile("../docs/OPERATIONS.md")
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, m := range tableRow.FindAllStringSubmatch(string(b), -1) {
		names[m[1]] = true
	}
	if !names[logkey.Component] || !names[logkey.UptimeMS] {
		t.Fatalf("found no Log fields table in docs/OPERATIONS.md (%d names)", len(names))
	}
	return names
}

// tableRow matches a row of the Log fields table: | `name` | meaning | unit |.
var tableRow = regexp.MustCompile("(?m)^\\| `([a-z0-9_]+)` \\| .* \\| .* \\|$")

// decodeLine decodes one JSON log line, failing on a field named twice
// (zerolog writes a key again when a logger adds it twice, and readers
// then keep only one of the values).
func decodeLine(line string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(line))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return nil, errors.New("not a JSON object")
	}
	fields := map[string]any{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return nil, err
		}
		key := tok.(string)
		var v any
		if err := dec.Decode(&v); err != nil {
			return nil, err
		}
		if _, dup := fields[key]; dup {
			return nil, errors.New("field " + key + " written twice")
		}
		fields[key] = v
	}
	if _, err := dec.Token(); err != nil {
		return nil, err
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, errors.New("more after the object")
	}
	return fields, nil
}
