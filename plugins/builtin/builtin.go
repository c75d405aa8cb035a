// Package builtin registers the plugins built into mgw. The list below is
// the one place a built-in plugin is named; a custom plugin is added the
// same way, with one line here.
package builtin

import (
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/analytics"
	"github.com/mgw-gateway/mgw/plugins/oauth"
	"github.com/mgw-gateway/mgw/plugins/quota"
	"github.com/mgw-gateway/mgw/plugins/spikearrest"
)

func init() {
	for _, s := range []plugins.Spec{
		// Always first when on; listed here like any other.
		{Name: plugins.Analytics, Section: analytics.Section, New: analytics.New},
		// The auth sections are typed fields of configs.Config.
		{Name: "oauth", New: oauth.Factory(oauth.ModeOAuth)},
		{Name: "apikeys", New: oauth.Factory(oauth.ModeAPIKeys)},
		{Name: "oauthv2", New: oauth.Factory(oauth.ModeOAuthV2)},
		{Name: "spikearrest", Section: spikearrest.Section, New: spikearrest.New},
		{Name: "quota", Section: quota.Section, New: quota.New},
	} {
		plugins.Register(s)
	}
}
