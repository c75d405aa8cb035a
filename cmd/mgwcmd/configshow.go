package mgwcmd

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/master"
)

// masked stands for a secret in `mgw config show`.
const maskedValue = "****"

func configShowCommand() *cli.Command {
	return &cli.Command{
		Name:  "show",
		Usage: "print the effective configuration, secrets masked: the file with ${VAR}s resolved, the flags, and in Edge mode what Edge sent (or the cache)",
		Description: "Like `nginx -T`: what a start would serve, built by start's own code. Secrets are masked: " +
			"the Edge key and secret, app keys and secrets, passwords in URLs; private keys and certificates are named by their files, never printed.",
		Flags: append(commonFlags(), &cli.BoolFlag{Name: "json", Usage: "print one JSON object instead of TOML"}),
		Action: func(c *cli.Context) error {
			p, err := resolveConfig(c)
			if err == nil {
				err = checkCounts(c)
			}
			if err != nil {
				return cli.Exit(err, 1)
			}
			ls := settingsFrom(p.config, c.String(flagLogLevel))
			snap, edgeFrom, err := master.Load(master.Options{
				ConfigPath: p.config, RunDir: p.runDir, ConfigDir: p.configDir,
				Processes: c.Int(flagProcesses), Port: c.Int(flagPort), Logger: zerolog.Nop(),
				Org: c.String(flagOrg), Env: c.String(flagEnv), Key: c.String(flagKey), Secret: c.String(flagSecret),
			})
			if err != nil {
				return cli.Exit(err, 1)
			}
			doc, err := effective(snap)
			if err != nil {
				return cli.Exit(err, 1)
			}
			run := map[string]any{
				"config_file": snap.Source, "config_dir": p.configDir, "run_dir": p.runDir, "mode": snap.Config.Mode(),
				"processes": c.Int(flagProcesses), "log_level": ls.level,
			}
			if snap.Org != "" || snap.Env != "" {
				run["org"], run["env"] = snap.Org, snap.Env
			}
			if c.String(flagKey) != "" {
				run["key"] = maskedValue
			}
			if c.String(flagSecret) != "" {
				run["secret"] = maskedValue
			}
			if edgeFrom != "" {
				run["edge_from"] = edgeFrom
			}
			if c.Bool("json") {
				b, _ := json.MarshalIndent(map[string]any{"run": run, "config": doc}, "", "  ")
				fmt.Println(string(b))
				return nil
			}
			var buf bytes.Buffer
			fmt.Fprintf(&buf, "# mgw config show: the configuration `mgw start` with these flags would serve.\n")
			keys := make([]string, 0, len(run))
			for k := range run {
				keys = append(keys, k)
			}
			sort.Strings(keys)
			for _, k := range keys {
				fmt.Fprintf(&buf, "# %-12s %v\n", k+":", run[k])
			}
			fmt.Fprintf(&buf, "# ${VAR}s are resolved, flags applied (--port over edgemicro.port), defaults filled in; secrets show as %q.\n\n", maskedValue)
			if err := toml.NewEncoder(&buf).Encode(doc); err != nil {
				return cli.Exit(fmt.Errorf("writing the configuration: %w", err), 1)
			}
			_, err = os.Stdout.Write(buf.Bytes())
			return err
		},
	}
}

// effective is the snapshot's configuration as one document, named as in
// mgw.toml (the plugin sections at the top level), with its secrets
// masked.
func effective(snap *configs.Snapshot) (map[string]any, error) {
	b, err := json.Marshal(snap.Config)
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, err
	}
	if secs, ok := doc["sections"].(map[string]any); ok {
		for k, v := range secs {
			doc[k] = v
		}
		delete(doc, "sections")
	}
	out := maskSecrets("", doc).(map[string]any)
	return numbers(out).(map[string]any), nil
}

// secretKeys are the keys whose values are secrets wherever they appear.
var secretKeys = map[string]bool{
	"secret": true, "password": true, "redisPassword": true, "client_secret": true, "passphrase": true,
}

// maskSecrets walks v and masks secrets: values of secretKeys, an app's
// key (it is an API key) but for its first 4 characters, and the password
// of any URL.
func maskSecrets(key string, v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = maskSecrets(k, e)
		}
		return v
	case []any:
		for i, e := range v {
			v[i] = maskSecrets(key, e)
		}
		if key == "apps" {
			for _, e := range v {
				if app, ok := e.(map[string]any); ok {
					if k, ok := app["key"].(string); ok {
						app["key"] = prefix(k) + maskedValue
					}
				}
			}
		}
		return v
	case string:
		if secretKeys[key] && v != "" {
			return maskedValue
		}
		return maskURL(v)
	}
	return v
}

// prefix is the first 4 characters of s, enough to tell keys apart.
func prefix(s string) string {
	if len(s) > 4 {
		return s[:4]
	}
	return ""
}

// maskURL masks the password of a URL; other strings are returned as is.
func maskURL(s string) string {
	if !strings.Contains(s, "://") || !strings.Contains(s, "@") {
		return s
	}
	u, err := url.Parse(s)
	if err != nil || u.User == nil {
		return s
	}
	if _, has := u.User.Password(); has {
		u.User = url.UserPassword(u.User.Username(), maskedValue)
	} else if u.User.Username() != "" {
		u.User = url.User(maskedValue)
	}
	return strings.Replace(u.String(), url.QueryEscape(maskedValue), maskedValue, 1)
}

// numbers turns the json.Numbers of a decoded document into int64 or
// float64, which the TOML encoder writes as numbers.
func numbers(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, e := range v {
			v[k] = numbers(e)
		}
	case []any:
		for i, e := range v {
			v[i] = numbers(e)
		}
	case json.Number:
		if i, err := v.Int64(); err == nil {
			return i
		}
		f, _ := v.Float64()
		return f
	}
	return v
}
