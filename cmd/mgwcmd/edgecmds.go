package mgwcmd

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/rs/zerolog"
	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/master"
	"github.com/mgw-gateway/mgw/plugins"
	"github.com/mgw-gateway/mgw/plugins/oauth"
)

// loadFileConfig parses the command's config file (or the embedded
// default) without contacting Edge.
func loadFileConfig(c *cli.Context) (paths, *configs.Snapshot, error) {
	p, err := resolveConfig(c)
	if err != nil {
		return p, nil, err
	}
	var snap *configs.Snapshot
	if p.config == "" {
		snap, err = configs.Default(os.LookupEnv)
	} else {
		snap, err = configs.Load(p.config, os.LookupEnv)
	}
	return p, snap, err
}

// authURI is where the edgemicro-auth proxy answers: edge_config.authUri,
// or the directory of jwt_public_key; in local mode the gateway itself.
func authURI(cfg *configs.Config, org, env string) string {
	if e := cfg.EdgeConfig; e != nil {
		if e.AuthURI != "" {
			return strings.TrimSuffix(edge.FormatURI(e.AuthURI, org, env), "/")
		}
		return e.JWTPublicKey[:strings.LastIndexByte(e.JWTPublicKey, '/')]
	}
	host := cfg.Edgemicro.Address
	if host == "" || host == "0.0.0.0" || host == "::" {
		host = "127.0.0.1"
	}
	return fmt.Sprintf("http://%s:%d/edgemicro-auth", host, cfg.Edgemicro.Port)
}

func tokenCommand() *cli.Command {
	fileFlag := &cli.StringFlag{Name: "file", Aliases: []string{"f"}, Usage: "read the token from `FILE` (- or absent: the first argument, else standard input)"}
	base := func() []cli.Flag {
		return []cli.Flag{
			&cli.StringFlag{Name: flagConfigDir, Aliases: []string{"c"}, Usage: "configuration `DIR` (default ~/.mgw)", EnvVars: []string{"MGW_CONFIG_DIR", "EDGEMICRO_CONFIG_DIR"}},
		}
	}
	return &cli.Command{
		Name:  "token",
		Usage: "get, decode and verify RS256 tokens",
		Subcommands: []*cli.Command{
			{
				Name:  "get",
				Usage: "get a token for an app's client credentials from Edge (or from the local gateway)",
				Flags: withCommon(append(base(),
					&cli.StringFlag{Name: "id", Aliases: []string{"i"}, Usage: "the app's client id (key)", Required: true},
					&cli.StringFlag{Name: "secret", Aliases: []string{"s"}, Usage: "the app's client secret (here -s is the app's, as in edgemicro's token get; the Edge secret is not needed)", Required: true},
					&cli.StringFlag{Name: "url", Usage: "token `URL` (default: authUri/token, or the local gateway's)"},
					&cli.BoolFlag{Name: "json", Usage: "print the whole JSON answer instead of the token alone"},
				), flagConfig, flagOrg, flagEnv),
				Action: func(c *cli.Context) error {
					_, snap, err := loadFileConfig(c)
					if err != nil {
						return cli.Exit(err, 1)
					}
					u := c.String("url")
					if u == "" {
						u = authURI(&snap.Config, c.String(flagOrg), c.String(flagEnv)) + "/token"
					}
					body, _ := json.Marshal(map[string]string{"client_id": c.String("id"), "client_secret": c.String("secret"), "grant_type": "client_credentials"})
					out, err := httpCall(c.Context, http.MethodPost, u, body)
					if err != nil {
						return cli.Exit(fmt.Sprintf("token get: %v", err), 1)
					}
					if c.Bool("json") {
						fmt.Println(strings.TrimSpace(string(out)))
						return nil
					}
					// The token alone, so that TOKEN=$(mgw token get …) works.
					var ans struct {
						Token       string `json:"token"`
						AccessToken string `json:"access_token"`
					}
					if err := json.Unmarshal(out, &ans); err != nil || (ans.Token == "" && ans.AccessToken == "") {
						return cli.Exit(fmt.Sprintf("token get: the answer holds no token: %.200s", out), 1)
					}
					if ans.Token == "" {
						ans.Token = ans.AccessToken
					}
					fmt.Println(ans.Token)
					return nil
				},
			},
			{
				Name:      "decode",
				Usage:     "print a token's header and claims without verifying it",
				ArgsUsage: "[TOKEN]",
				Flags:     withCommon([]cli.Flag{fileFlag}),
				Action: func(c *cli.Context) error {
					tok, err := readToken(c)
					if err != nil {
						return cli.Exit(err, 1)
					}
					parts := strings.Split(tok, ".")
					if len(parts) != 3 {
						return cli.Exit("token decode: not a JWS (want three dot-separated parts)", 1)
					}
					out := map[string]json.RawMessage{}
					for i, name := range []string{"header", "payload"} {
						b, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(parts[i], "="))
						if err != nil || !json.Valid(b) {
							return cli.Exit(fmt.Sprintf("token decode: the %s is not base64url JSON", name), 1)
						}
						out[name] = b
					}
					b, _ := json.MarshalIndent(out, "", "  ")
					fmt.Println(string(b))
					return nil
				},
			},
			{
				Name:      "verify",
				Usage:     "verify a token's RS256 signature and times with the org's (or the local) public key",
				ArgsUsage: "[TOKEN]",
				Flags:     withCommon(append(base(), fileFlag), flagConfig, flagOrg, flagEnv),
				Action: func(c *cli.Context) error {
					tok, err := readToken(c)
					if err != nil {
						return cli.Exit(err, 1)
					}
					p, snap, err := loadFileConfig(c)
					if err != nil {
						return cli.Exit(err, 1)
					}
					keys, err := verificationKeys(c.Context, p, &snap.Config)
					if err != nil {
						return cli.Exit(fmt.Sprintf("token verify: %v", err), 1)
					}
					claims := jwt.MapClaims{}
					_, err = jwt.NewParser(jwt.WithValidMethods([]string{"RS256"}), jwt.WithIssuedAt()).
						ParseWithClaims(tok, claims, func(*jwt.Token) (any, error) { return keys, nil })
					if err != nil {
						return cli.Exit(fmt.Sprintf("token verify: invalid: %v", err), 1)
					}
					b, _ := json.MarshalIndent(claims, "", "  ")
					fmt.Printf("valid\n%s\n", b)
					return nil
				},
			},
		},
	}
}

// verificationKeys are the public keys tokens are verified with: the
// org's PEM and JWKS in Edge mode, the local pair's public key otherwise.
func verificationKeys(ctx context.Context, p paths, cfg *configs.Config) (jwt.VerificationKeySet, error) {
	var set jwt.VerificationKeySet
	if e := cfg.EdgeConfig; e != nil {
		b, err := httpCall(ctx, http.MethodGet, e.JWTPublicKey, nil)
		if err != nil {
			return set, err
		}
		k, err := oauth.ParsePublicKey(b)
		if err != nil {
			return set, err
		}
		set.Keys = append(set.Keys, k)
		if e.JWKPublicKeys != "" {
			if b, err := httpCall(ctx, http.MethodGet, e.JWKPublicKeys, nil); err == nil {
				if ks, err := oauth.ParseJWKS(b); err == nil {
					for _, k := range ks {
						set.Keys = append(set.Keys, k)
					}
				}
			}
		}
		return set, nil
	}
	b, err := os.ReadFile(filepath.Join(p.configDir, master.PublicKeyFile))
	if err != nil {
		return set, fmt.Errorf("local public key: %w (run mgw init)", err)
	}
	k, err := oauth.ParsePublicKey(b)
	if err != nil {
		return set, err
	}
	set.Keys = append(set.Keys, k)
	return set, nil
}

func readToken(c *cli.Context) (string, error) {
	var b []byte
	var err error
	switch f := c.String("file"); {
	case f != "" && f != "-":
		b, err = os.ReadFile(f)
	case c.Args().Len() > 0:
		b = []byte(c.Args().First())
	default:
		b, err = io.ReadAll(io.LimitReader(os.Stdin, 1<<20))
	}
	if err != nil {
		return "", fmt.Errorf("reading the token: %w", err)
	}
	tok := strings.TrimSpace(string(b))
	tok = strings.TrimPrefix(tok, "Bearer ")
	if tok == "" {
		return "", errors.New("no token given (-f FILE, an argument, or standard input)")
	}
	return tok, nil
}

// httpCall makes one call with a timeout and returns the body of a 200.
func httpCall(ctx context.Context, method, url string, body []byte) ([]byte, error) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s %s: %s: %s", method, url, resp.Status, strings.TrimSpace(string(b)))
	}
	return b, nil
}

func verifyCommand() *cli.Command {
	return &cli.Command{
		Name: "verify",
		Usage: "a dry run of start: the config file, TLS files, keys, every plugin section, the log and run dirs, " +
			"the access log and local analytics files, the control socket and limit zone, " +
			"the listening addresses and, in Edge mode, every Edge endpoint, one line each",
		Flags: commonFlags(),
		Action: func(c *cli.Context) error {
			failed := 0
			line := func(ok bool, name, detail string, err error) {
				mark := "ok  "
				if !ok {
					mark, failed = "FAIL", failed+1
				}
				l := fmt.Sprintf("%s %-16s %s", mark, name, detail)
				if err != nil {
					l = fmt.Sprintf("%s %-16s %s", mark, name, oneLine(err.Error()))
				}
				fmt.Println(strings.TrimRight(l, " "))
			}
			done := func() error {
				if failed > 0 {
					return cli.Exit(fmt.Sprintf("%d check(s) failed: start would fail", failed), 1)
				}
				return nil
			}
			p, err := resolveConfig(c)
			if err == nil {
				err = checkCounts(c)
			}
			if err != nil {
				line(false, "config", "", err)
				return done()
			}
			// The logging start sets up before anything else.
			ls := settingsFrom(p.config, c.String(flagLogLevel))
			if _, err := newLogger(io.Discard, ls); err != nil {
				line(false, "log level", "", err)
			}
			if ls.dir != "" {
				err := checkLogDir(ls.dir)
				line(err == nil, "log dir", ls.dir, err)
			}
			if path := accessLogPath(ls); path != "" {
				err := checkLogFile(path)
				line(err == nil, "access log file", path, err)
			}
			// What the master checks before it serves, by its own code.
			snap, checks := master.Preflight(master.Options{
				ConfigPath: p.config, RunDir: p.runDir, ConfigDir: p.configDir,
				Processes: c.Int(flagProcesses), Port: c.Int(flagPort), Logger: zerolog.Nop(),
				Org: c.String(flagOrg), Env: c.String(flagEnv), Key: c.String(flagKey), Secret: c.String(flagSecret),
			})
			for _, ch := range checks {
				line(ch.Err == nil, ch.Name, ch.Detail, ch.Err)
			}
			if snap == nil && p.config != "" {
				// Edge mode fails to load when Edge refuses (and there is
				// no cache): each endpoint's line says which refuses.
				snap, _ = configs.Load(p.config, os.LookupEnv)
			}
			if snap == nil || !snap.Config.EdgeMode() {
				return done()
			}
			cfg := &snap.Config
			cred := edge.Credentials{Org: c.String(flagOrg), Env: c.String(flagEnv), Key: c.String(flagKey), Secret: c.String(flagSecret)}
			client, err := edge.NewClient(*cfg.EdgeConfig, cred)
			if err != nil {
				line(false, "edge", "", err)
				return done()
			}
			for _, r := range client.Verify(c.Context, edge.VerifyAPIKeyURL(cfg)) {
				detail := r.URL
				if r.Err == nil && r.Detail != "" {
					detail += " (" + r.Detail + ")"
				}
				if r.Err != nil {
					line(false, r.Name, "", fmt.Errorf("%s: %w", r.URL, r.Err))
				} else {
					line(true, r.Name, detail, nil)
				}
			}
			return done()
		},
	}
}

// checkCounts refuses a number of workers or a port that cannot be.
func checkCounts(c *cli.Context) error {
	if n := c.Int(flagProcesses); n < 1 || n > master.MaxProcesses {
		return fmt.Errorf("--processes %d: give 1 to %d workers", n, master.MaxProcesses)
	}
	if port := c.Int(flagPort); port < 0 || port > 65535 {
		return fmt.Errorf("--port %d is not a port number", port)
	}
	return nil
}

func configCommand() *cli.Command {
	return &cli.Command{
		Name:  "config",
		Usage: "work with configuration files",
		Subcommands: []*cli.Command{
			configImportCommand(),
			configShowCommand(),
		},
	}
}

func configImportCommand() *cli.Command {
	return &cli.Command{
		Name:      "import",
		Usage:     "convert an Edge Microgateway {org}-{env}-config.yaml into mgw TOML",
		ArgsUsage: "edgemicro.yaml",
		Description: "Every key with a meaning in mgw is carried; every other one is named on stderr. " +
			"A key whose loss weakens the gateway (TLS, address lists, mutual TLS, a plugin or its settings) " +
			"makes the import fail unless --force. Where a meaning changes (spike arrests and quotas counted " +
			"per worker in edgemicro, per instance in mgw) a note gives the value that keeps the old effect.",
		Flags: append(commonFlagsFor(),
			&cli.StringFlag{Name: "output", Aliases: []string{"out"}, Usage: "write the TOML to `FILE` (default: standard output)"},
			&cli.BoolFlag{Name: "force", Usage: "write the TOML even when settings that protect the gateway cannot be carried"},
			&cli.IntFlag{Name: "edgemicro-processes", Usage: "the `N` workers edgemicro ran (its -p): spikearrest.allow is multiplied by it to keep the effective limit"},
		),
		Action: func(c *cli.Context) error {
			if c.Args().Len() != 1 {
				return cli.Exit("config import: give one edgemicro YAML file", 1)
			}
			if n := c.Int("edgemicro-processes"); n < 0 {
				return cli.Exit(fmt.Sprintf("config import: --edgemicro-processes %d is not a number of workers", n), 1)
			}
			src, err := os.ReadFile(c.Args().First())
			if err != nil {
				return cli.Exit(err, 1)
			}
			known := func(name string) bool { return slices.Contains(plugins.Names(), name) }
			out, rep, err := configs.Import(src, configs.ImportOptions{KnownPlugin: known, Processes: c.Int("edgemicro-processes")})
			if err != nil {
				return cli.Exit(err, 1)
			}
			for _, d := range rep.Dropped {
				fmt.Fprintln(os.Stderr, "dropped "+d)
			}
			for _, n := range rep.Notes {
				fmt.Fprintln(os.Stderr, "note    "+n)
			}
			for _, l := range rep.Lost {
				fmt.Fprintln(os.Stderr, "LOST    "+l)
			}
			if len(rep.Lost) > 0 && !c.Bool("force") {
				return cli.Exit(fmt.Sprintf("config import: %d setting(s) that protect the gateway cannot be carried (LOST above): change them in the YAML, or give --force to write the TOML without them; nothing was written", len(rep.Lost)), 1)
			}
			if f := c.String("output"); f != "" {
				if err := os.WriteFile(f, out, 0o600); err != nil {
					return cli.Exit(err, 1)
				}
				fmt.Fprintf(os.Stderr, "wrote %s\n", f)
				return nil
			}
			_, err = os.Stdout.Write(out)
			return err
		},
	}
}
