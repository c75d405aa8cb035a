package mgwcmd

import (
	"bytes"
	"encoding/json"
	"testing"
	"time"

	"github.com/mgw-gateway/mgw/internal/logkey"
)

// TestDurationsAreWrittenInTheUnitOfTheirName: a duration field's name
// ends in _ms, so the root logger writes Dur in milliseconds.
func TestDurationsAreWrittenInTheUnitOfTheirName(t *testing.T) {
	var b bytes.Buffer
	log, err := newLogger(&b, logSettings{level: "info"})
	if err != nil {
		t.Fatal(err)
	}
	log.Info().Dur(logkey.UptimeMS, 1500*time.Microsecond).Msg("m")
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line[logkey.UptimeMS] != 1.5 {
		t.Errorf("1.5 ms is written as %v (%s)", line[logkey.UptimeMS], b.String())
	}
}

// TestLinesOfTheCommandSayWhoWroteThem: a line this package writes
// carries the component and the pid, once each.
func TestLinesOfTheCommandSayWhoWroteThem(t *testing.T) {
	var b bytes.Buffer
	root, err := newLogger(&b, logSettings{level: "info"})
	if err != nil {
		t.Fatal(err)
	}
	l := as(root, logkey.ComponentMaster)
	l.Info().Msg("m")
	if n := bytes.Count(b.Bytes(), []byte(`"`+logkey.Component+`"`)); n != 1 {
		t.Fatalf("component written %d times: %s", n, b.String())
	}
	var line map[string]any
	if err := json.Unmarshal(b.Bytes(), &line); err != nil {
		t.Fatal(err)
	}
	if line[logkey.Component] != logkey.ComponentMaster || line[logkey.PID] == nil {
		t.Errorf("line %s lacks component master or the pid", b.String())
	}
}
