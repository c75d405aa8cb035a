package configs

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/internal/configdoc"
)

// TestConfigReferenceDescribesEveryKey keeps docs/CONFIG.md true for the
// typed sections of mgw.toml: every toml key of Config has a row under
// its section's heading, with the default Defaults gives it, and no row
// there names a key Config lacks. The
// plugins' sections are checked in plugins/builtin.
func TestConfigReferenceDescribesEveryKey(t *testing.T) {
	doc, err := configdoc.Read("../" + configdoc.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	configdoc.Keys(reflect.TypeOf(Config{}), "toml", "", want)
	delete(want, "") // the file's top level holds only tables
	if len(want["edgemicro"]) == 0 || len(want["edgemicro.logging"]) == 0 || len(want["proxies"]) == 0 {
		t.Fatalf("walking Config found too little: %v", want)
	}
	problems := append(configdoc.Missing(doc, want), configdoc.Extra(doc, want)...)
	// Every default Defaults and the normalisation of a parsed file set
	// (with every optional table present) is the one the document gives.
	defaults := Defaults()
	defaults.Metrics, defaults.EdgeConfig = &Metrics{}, &EdgeConfig{}
	defaults.normalizeRest()
	problems = append(problems, configdoc.Defaults(doc, reflect.ValueOf(defaults), "toml", "")...)
	// Every row of the document, plugin sections included, is complete.
	problems = append(problems, configdoc.Incomplete(doc)...)
	if len(problems) > 0 {
		t.Errorf("docs/CONFIG.md is out of step with configs.Config:\n%s", strings.Join(problems, "\n"))
	}
}
