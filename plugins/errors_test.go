package plugins

import (
	"net/http/httptest"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// TestCompatibilityBodiesAreWhatWriteErrorWrites reads the error table of
// docs/COMPATIBILITY.md and checks that each {"message","status"} body it
// shows is, byte for byte, what WriteError answers for that status and
// message, with the JSON content type: the document and the code cannot
// disagree on the shape clients parse.
func TestCompatibilityBodiesAreWhatWriteErrorWrites(t *testing.T) {
	b, err := os.ReadFile("../docs/COMPATIBILITY.md")
	if err != nil {
		t.Fatal(err)
	}
	body := regexp.MustCompile("`(\\{\"message\":\"[^\"`]*\",\"status\":([0-9]{3})\\})`")
	msg := regexp.MustCompile(`"message":"([^"]*)"`)
	n := 0
	for _, m := range body.FindAllStringSubmatch(string(b), -1) {
		text := msg.FindStringSubmatch(m[1])[1]
		if strings.ContainsRune(text, '…') {
			continue // a message that depends on the failure
		}
		status, _ := strconv.Atoi(m[2])
		rec := httptest.NewRecorder()
		WriteError(rec, status, text)
		if got := rec.Body.String(); got != m[1] || rec.Code != status || rec.Header().Get("Content-Type") != "application/json" {
			t.Errorf("docs/COMPATIBILITY.md shows %s, WriteError answers %d %q with %s: make them agree", m[1], rec.Code, rec.Header().Get("Content-Type"), got)
		}
		n++
	}
	if n < 5 {
		t.Fatalf("found %d error bodies in docs/COMPATIBILITY.md's table, want at least 5", n)
	}
}
