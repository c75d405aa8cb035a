package builtin

import (
	"reflect"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/internal/configdoc"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/accesscontrol"
	"github.com/mgw-gateway/mgw/plugins/analytics"
	"github.com/mgw-gateway/mgw/plugins/cors"
	"github.com/mgw-gateway/mgw/plugins/example/headeruppercase"
	"github.com/mgw-gateway/mgw/plugins/healthcheck"
	"github.com/mgw-gateway/mgw/plugins/quota"
	"github.com/mgw-gateway/mgw/plugins/spikearrest"
)

// settingsOf maps each plugin section to the struct its plugin decodes
// it into. A plugin registered with a section must appear here.
var settingsOf = map[string]any{
	analytics.Section:       analytics.Settings{},
	spikearrest.Section:     spikearrest.Settings{},
	quota.Section:           quota.Settings{},
	cors.Section:            cors.Settings{},
	accesscontrol.Section:   accesscontrol.Settings{},
	healthcheck.Section:     healthcheck.Settings{},
	headeruppercase.Section: headeruppercase.Settings{},
}

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
	for name, section := range plugins.Sections() {
		s, ok := settingsOf[section]
		if !ok {
			problems = append(problems, "plugin "+name+" owns the section ["+section+"]: add its Settings struct to settingsOf in plugins/builtin/docs_test.go")
			continue
		}
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
