package configs

import (
	"strings"
	"testing"
)

// TestErrorsInTOMLTerms: a type error names the key, what the file has
// and what mgw wants, in TOML's words; a misspelt key gets a suggestion.
func TestErrorsInTOMLTerms(t *testing.T) {
	t.Parallel()
	AllowSection("spikearrest", nil)
	tests := []struct{ src, want string }{
		{"[proxies]\nname = \"a\"\n", "proxies is a table ([proxies]), but mgw wants an array of tables: write [[proxies]]"},
		{"[[edgemicro]]\nport = 1\n", "edgemicro is an array of tables ([[edgemicro]]), but mgw wants one table: write [edgemicro]"},
		{"[edgemicro]\nport = \"80\"\n", `line 2: edgemicro.port is a string, but mgw wants an integer (write 80, not "80")`},
		{"[edgemicro]\nprot = 80\n", `unknown key "edgemicro.prot" (line 2) (did you mean "port"?)`},
		{"[edgemicro.logging]\nlevle = \"info\"\n", `(did you mean "level"?)`}, //nolint:misspell // the typo is the test
		{"[spikarrest]\nallow = 1\n", `unknown key "spikarrest" (line 1) (did you mean "spikearrest"?)`},
		// The key of its own table, not the first line that sets a key of that name.
		{"[edgemicro.logging]\nlevel = \"info\"\n[edgemicro.plugins]\nlevel = 3\n", `unknown key "edgemicro.plugins.level" (line 4)`},
		{"[[proxies]]\nname = \"a\"\nbase_path = \"/a\"\nurl = \"http://a\"\n[[proxies]]\nname = \"b\"\nbase_path = \"/b\"\nurl = \"http://b\"\nnmae = 1\n", `unknown key "proxies.nmae" (line 9) (did you mean "name"?)`},
	}
	for _, tc := range tests {
		_, err := Parse([]byte(tc.src), testEnv)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want it to say %q", tc.src, err, tc.want)
		}
	}
	if _, err := Parse([]byte("[edgemicro]\nzzzzzz = 1\n"), testEnv); err == nil || strings.Contains(err.Error(), "did you mean") {
		t.Errorf("a key far from every known one got a suggestion: %v", err)
	}
}
