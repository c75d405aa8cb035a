// Package builtin registers the plugins built into mgw. The list below is
// the one place a built-in plugin is named; a custom plugin is added the
// same way, with one line here.
package builtin

import (
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/oauth"
)

func init() {
	for _, p := range []struct {
		name    string
		factory plugins.Factory
	}{
		{"oauth", oauth.Factory(oauth.ModeOAuth)},
		{"apikeys", oauth.Factory(oauth.ModeAPIKeys)},
		{"oauthv2", oauth.Factory(oauth.ModeOAuthV2)},
	} {
		plugins.Register(p.name, p.factory)
	}
}
