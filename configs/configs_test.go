package configs

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files")

func testEnv(name string) (string, bool) {
	if name == "PORT" {
		return "18000", true
	}
	return "", false
}

// TestGolden parses every file in testdata/valid and compares the snapshot
// with its .golden.json, and every file in testdata/invalid and checks that
// each line of its .err appears in the error.
func TestGolden(t *testing.T) {
	t.Parallel()
	valid, _ := filepath.Glob("testdata/valid/*.toml")
	invalid, _ := filepath.Glob("testdata/invalid/*.toml")
	if len(valid) == 0 || len(invalid) == 0 {
		t.Fatal("no test data")
	}
	for _, path := range valid {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			s, err := Load(path, testEnv)
			if err != nil {
				t.Fatalf("Load: %v", err)
			}
			got, _ := json.MarshalIndent(s.Config, "", "  ")
			golden := strings.TrimSuffix(path, ".toml") + ".golden.json"
			if *update {
				if err := os.WriteFile(golden, append(got, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("reading golden file (run with -update): %v", err)
			}
			if !bytes.Equal(bytes.TrimSpace(got), bytes.TrimSpace(want)) {
				t.Fatalf("snapshot differs from %s:\n%s", golden, got)
			}
		})
	}
	for _, path := range invalid {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			_, err := Load(path, testEnv)
			if err == nil {
				t.Fatal("Load succeeded, want an error")
			}
			want, _ := os.ReadFile(strings.TrimSuffix(path, ".toml") + ".err")
			for _, line := range strings.Split(strings.TrimSpace(string(want)), "\n") {
				if !strings.Contains(err.Error(), line) {
					t.Errorf("error %q does not contain %q", err, line)
				}
			}
		})
	}
}

func TestDefaultServesTheEchoDemo(t *testing.T) {
	t.Parallel()
	s, err := Default(testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if s.Source != DefaultSource || len(s.Config.Proxies) != 1 || s.Config.Proxies[0].URL != "mock://echo" {
		t.Fatalf("default config = %+v", s)
	}
	if s.Config.Edgemicro.Port != 8000 {
		t.Fatalf("default port = %d, want 8000", s.Config.Edgemicro.Port)
	}
	// The demo's key is published: it serves this machine only.
	if s.Config.Edgemicro.Address != "127.0.0.1" {
		t.Fatalf("default address = %q, want 127.0.0.1", s.Config.Edgemicro.Address)
	}
}

func TestSubstitute(t *testing.T) {
	t.Parallel()
	tests := []struct {
		desc, in, want, err string
	}{
		{desc: "plain", in: "a = 1", want: "a = 1"},
		{desc: "number", in: "port = ${PORT}", want: "port = 18000"},
		{desc: "literal dollar", in: `s = "$$HOME and $${PORT}"`, want: `s = "$HOME and ${PORT}"`},
		{desc: "unset", in: "x = 1\ny = ${NOPE}", err: "line 2: environment variable NOPE is not set"},
		{desc: "bad name", in: "y = ${1X}", err: `"${1X}" is not a valid variable reference`},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got, err := Substitute([]byte(tc.in), testEnv)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err = %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil || string(got) != tc.want {
				t.Fatalf("Substitute(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
}

func TestChecksumTracksContent(t *testing.T) {
	t.Parallel()
	a, _ := Parse([]byte("[edgemicro]\nport = 1000\n"), testEnv)
	b, _ := Parse([]byte("[edgemicro]\nport = 1000\n"), testEnv)
	c, _ := Parse([]byte("[edgemicro]\nport = 1001\n"), testEnv)
	if a.Checksum != b.Checksum || a.Checksum == c.Checksum {
		t.Fatalf("checksums %s %s %s", a.Checksum, b.Checksum, c.Checksum)
	}
}

func TestWireRoundTrip(t *testing.T) {
	t.Parallel()
	s, err := Load("testdata/valid/full.toml", testEnv)
	if err != nil {
		t.Fatal(err)
	}
	s.Revision = 9
	b, err := s.Encode()
	if err != nil {
		t.Fatal(err)
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if got.Revision != 9 || got.Config.Proxies[0].Timeout != 1500 || got.Config.Headers.Via {
		t.Fatalf("decoded %+v", got)
	}
	if _, err := Decode([]byte(`{"revision":1,"config":{"edgemicro":{"port":0}}}`)); err == nil {
		t.Fatal("Decode accepted an invalid snapshot")
	}
}

func FuzzParse(f *testing.F) {
	for _, dir := range []string{"testdata/valid", "testdata/invalid"} {
		files, _ := filepath.Glob(dir + "/*.toml")
		for _, p := range files {
			b, _ := os.ReadFile(p)
			f.Add(b)
		}
	}
	f.Add(DefaultTOML())
	f.Fuzz(func(t *testing.T, src []byte) {
		s, err := Parse(src, testEnv)
		if err != nil {
			return
		}
		if err := s.Config.Validate(); err != nil {
			t.Fatalf("Parse accepted a config that does not validate: %v", err)
		}
		b, err := s.Encode()
		if err != nil {
			t.Fatal(err)
		}
		if _, err := Decode(b); err != nil {
			t.Fatalf("a parsed snapshot does not survive the wire: %v", err)
		}
	})
}

func TestSubstituteLeavesCommentsAlone(t *testing.T) {
	t.Parallel()
	in := "# write ${VAR} here\ns = \"a # ${PORT}\" # ${NOPE}\n"
	got, err := Substitute([]byte(in), testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if want := "# write ${VAR} here\ns = \"a # 18000\" # ${NOPE}\n"; string(got) != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestDefaultHasTheDocumentedDemoApp(t *testing.T) {
	t.Parallel()
	s, err := Default(testEnv)
	if err != nil {
		t.Fatal(err)
	}
	if len(s.Config.Apps) != 1 || s.Config.Apps[0].Key != "mgw-demo-key" || s.Config.Apps[0].Products[0] != "demo-product" {
		t.Fatalf("default apps = %+v", s.Config.Apps)
	}
}

func TestEmptyFileIsAnError(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"", "\n  \n", "# only a comment\n\n   # another\n"} {
		path := filepath.Join(t.TempDir(), "mgw.toml")
		if err := os.WriteFile(path, []byte(src), 0o644); err != nil {
			t.Fatal(err)
		}
		if _, err := Load(path, testEnv); err == nil || !strings.Contains(err.Error(), path+" is empty") {
			t.Errorf("Load(%q) = %v, want an error naming the empty file", src, err)
		}
	}
}
