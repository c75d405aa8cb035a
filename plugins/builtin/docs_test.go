package builtin

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/configdoc"
	"github.com/mgw-gateway/mgw/plugins"
)

// TestConfigReferenceDescribesEveryPluginKey keeps docs/CONFIG.md true for
// the plugins' sections: every key of every registered plugin's Settings
// has a row under its section's heading, no row there names a key the
// plugin does not read, and the document has no section heading that
// neither configs.Config nor a plugin owns.
func TestConfigReferenceDescribesEveryPluginKey(t *testing.T) {
	doc, err := configdoc.Read("../../" + configdoc.Path)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{}
	var problems []string
	for section, s := range plugins.SectionSettings() {
		configdoc.Keys(reflect.TypeOf(s), "json", section, want)
	}
	if len(want["spikearrest"]) == 0 || len(want["quotas"]) == 0 {
		t.Fatalf("walking the plugins' settings found too little: %v", want)
	}
	// The chain reads its own keys (excludeUrls) of every plugin's section.
	problems = append(problems, configdoc.Missing(doc, want)...)
	problems = append(problems, configdoc.Extra(doc, want, configs.ChainKeys...)...)

	typed := map[string][]string{}
	configdoc.Keys(reflect.TypeOf(configs.Config{}), "toml", "", typed)
	for section := range doc {
		if _, ok := want[section]; !ok {
			if _, ok := typed[section]; !ok {
				problems = append(problems, configdoc.Path+" has a heading for ["+section+"], a section mgw does not have: remove it, or fix its name")
			}
		}
	}
	if len(problems) > 0 {
		t.Errorf("docs/CONFIG.md is out of step with the plugins' settings:\n%s", strings.Join(problems, "\n"))
	}
}
