// Package builtin registers the plugins built into mgw. The list below is
// the one place a plugin is named; a custom plugin is added the same
// way, with one line here (see docs/PLUGINS.md).
package builtin

import (
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/accesscontrol"
	"github.com/mgw-gateway/mgw/plugins/analytics"
	"github.com/mgw-gateway/mgw/plugins/cors"
	"github.com/mgw-gateway/mgw/plugins/example/headeruppercase"
	"github.com/mgw-gateway/mgw/plugins/healthcheck"
	"github.com/mgw-gateway/mgw/plugins/oauth"
	"github.com/mgw-gateway/mgw/plugins/quota"
	"github.com/mgw-gateway/mgw/plugins/spikearrest"
)

func init() {
	for _, s := range []plugins.Spec{
		// Always first when on; listed here like any other.
		{Name: plugins.Analytics, Section: analytics.Section, Settings: analytics.Settings{}, New: analytics.New},
		// The auth sections are typed fields of configs.Config.
		{Name: "oauth", New: oauth.Factory(oauth.ModeOAuth)},
		{Name: "apikeys", New: oauth.Factory(oauth.ModeAPIKeys)},
		{Name: "oauthv2", New: oauth.Factory(oauth.ModeOAuthV2)},
		{Name: "spikearrest", Section: spikearrest.Section, Settings: spikearrest.Settings{}, New: spikearrest.New},
		{Name: "quota", Section: quota.Section, Settings: quota.Settings{}, New: quota.New},
		{Name: "cors", Section: cors.Section, Settings: cors.Settings{}, New: cors.New},
		{Name: "accesscontrol", Section: accesscontrol.Section, Settings: accesscontrol.Settings{}, New: accesscontrol.New},
		{Name: "healthcheck", Section: healthcheck.Section, Settings: healthcheck.Settings{}, New: healthcheck.New},
		// The example of a custom plugin (docs/PLUGINS.md): a custom
		// plugin is one more line here.
		{Name: headeruppercase.Name, Section: headeruppercase.Section, Settings: headeruppercase.Settings{}, New: headeruppercase.New},
	} {
		plugins.Register(s)
	}
}
