package mgwcmd

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/mgw-gateway/mgw/configs/edge"
	"github.com/mgw-gateway/mgw/plugins/oauth"
)

// Defaults of the Edge (public cloud) endpoints, as edgemicro has them.
const (
	defaultMgmtURL = "https://api.enterprise.apigee.com"
	defaultBaseURL = "https://edgemicroservices.apigee.net/edgemicro/%s/organization/%s/environment/%s"
	defaultAuthURL = "https://%s-%s.apigee.net/edgemicro-auth"
	kvmName        = "microgateway"
)

// mgmtFlags are the flags of the management commands, named as
// edgemicro's. passwordShort is false where edgemicro uses -p for
// something else.
func mgmtFlags(passwordShort bool) []cli.Flag {
	pw := &cli.StringFlag{Name: "password", Usage: "Apigee management password", EnvVars: []string{"EDGEMICRO_PASSWORD"}}
	if passwordShort {
		pw.Aliases = []string{"p"}
	}
	return []cli.Flag{
		&cli.StringFlag{Name: flagOrg, Aliases: []string{"o"}, Usage: "Apigee organization", EnvVars: []string{"EDGEMICRO_ORG"}, Required: true},
		&cli.StringFlag{Name: flagEnv, Aliases: []string{"e"}, Usage: "Apigee environment", EnvVars: []string{"EDGEMICRO_ENV"}, Required: true},
		&cli.StringFlag{Name: "username", Aliases: []string{"u"}, Usage: "Apigee management username", EnvVars: []string{"EDGEMICRO_USERNAME"}},
		pw,
		&cli.StringFlag{Name: "token", Aliases: []string{"t"}, Usage: "Apigee OAuth token instead of username and password", EnvVars: []string{"EDGEMICRO_SAML_TOKEN"}},
		&cli.StringFlag{Name: "mgmt-url", Usage: "management API `URL`", Value: defaultMgmtURL, EnvVars: []string{"MGMT_URI"}},
		&cli.StringFlag{Name: "base-url", Usage: "edgemicro services URL template (%s: kind, org, env)", Value: defaultBaseURL, EnvVars: []string{"BASE_URI"}},
		&cli.StringFlag{Name: "auth-url", Usage: "edgemicro-auth URL template (%s: org, env)", Value: defaultAuthURL, EnvVars: []string{"AUTH_URI"}},
		&cli.StringFlag{Name: flagConfigDir, Aliases: []string{"c"}, Usage: "configuration `DIR` (default ~/.mgw)", EnvVars: []string{"MGW_CONFIG_DIR", "EDGEMICRO_CONFIG_DIR"}},
	}
}

// mgmtEnv is what a management command works with.
type mgmtEnv struct {
	c        *cli.Context
	org, env string
	m        *edge.Mgmt
}

func newMgmtEnv(c *cli.Context) *mgmtEnv {
	auth := edge.MgmtAuth{Username: c.String("username"), Password: c.String("password"), Token: c.String("token")}
	return &mgmtEnv{c: c, org: c.String(flagOrg), env: c.String(flagEnv), m: edge.NewMgmt(auth)}
}

func (e *mgmtEnv) mgmtURL(format string, args ...any) string {
	return strings.TrimSuffix(e.c.String("mgmt-url"), "/") + fmt.Sprintf(format, args...)
}

func (e *mgmtEnv) kvmURL(suffix string) string {
	return e.mgmtURL("/v1/organizations/%s/environments/%s/keyvaluemaps%s", url.PathEscape(e.org), url.PathEscape(e.env), suffix)
}

func (e *mgmtEnv) baseURL(kind string) string {
	return edge.FormatURI(e.c.String("base-url"), kind, e.org, e.env)
}

func (e *mgmtEnv) authURL() string {
	return strings.TrimSuffix(edge.FormatURI(e.c.String("auth-url"), e.org, e.env), "/")
}

// fail turns an error into exit status 1 with one line.
func fail(what string, err error) error {
	return cli.Exit(fmt.Sprintf("%s: %s", what, oneLine(err.Error())), 1)
}

// randomHex is edgemicro's key and secret: sha256 of the time, 256
// random bytes and the time again.
func randomHex() string {
	b := make([]byte, 256)
	_, _ = rand.Read(b)
	now := []byte(strconv.FormatInt(time.Now().UnixNano(), 10))
	sum := sha256.Sum256(append(append(append([]byte{}, now...), b...), now...))
	return hex.EncodeToString(sum[:])
}

// deployedRevision returns the revision of proxy deployed to the env, or
// "" when it is not deployed there.
func (e *mgmtEnv) deployedRevision(proxy string) (string, error) {
	var d struct {
		Environment []struct {
			Name     string `json:"name"`
			Revision []struct {
				Name  string `json:"name"`
				State string `json:"state"`
			} `json:"revision"`
		} `json:"environment"`
	}
	if err := e.m.Do(e.c.Context, http.MethodGet, e.mgmtURL("/v1/o/%s/apis/%s/deployments", url.PathEscape(e.org), url.PathEscape(proxy)), nil, &d); err != nil {
		if edge.IsStatus(err, http.StatusNotFound) {
			return "", nil
		}
		return "", err
	}
	for _, env := range d.Environment {
		if env.Name != e.env {
			continue
		}
		for _, r := range env.Revision {
			if r.State == "" || r.State == "deployed" {
				return r.Name, nil
			}
		}
	}
	return "", nil
}

// keyPair makes an RSA key and a self-signed certificate for signing JWTs.
func keyPair(cn string) (keyPEM, certPEM string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", err
	}
	serial, _ := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	tmpl := &x509.Certificate{
		SerialNumber: serial, Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0),
		KeyUsage: x509.KeyUsageDigitalSignature,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return "", "", err
	}
	kb, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return "", "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kb})),
		string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}

type kvmEntry struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

type kvm struct {
	Name      string     `json:"name"`
	Encrypted any        `json:"encrypted,omitempty"` // "true" when sent, true when read
	Entry     []kvmEntry `json:"entry"`
}

// installCert stores a new key pair in the microgateway KVM.
func (e *mgmtEnv) installCert(force bool) error {
	keyPEM, certPEM, err := keyPair(e.org + "-" + e.env)
	if err != nil {
		return err
	}
	body := kvm{Name: kvmName, Encrypted: "true", Entry: []kvmEntry{
		{Name: "private_key", Value: keyPEM}, {Name: "public_key", Value: certPEM}, {Name: "private_key_kid", Value: "1"},
	}}
	err = e.m.Do(e.c.Context, http.MethodPost, e.kvmURL(""), body, nil)
	if edge.IsStatus(err, http.StatusConflict) && force {
		if err := e.m.Do(e.c.Context, http.MethodDelete, e.kvmURL("/"+kvmName), nil, nil); err != nil {
			return err
		}
		err = e.m.Do(e.c.Context, http.MethodPost, e.kvmURL(""), body, nil)
	}
	if edge.IsStatus(err, http.StatusConflict) {
		return fmt.Errorf("%w; the KVM %s holds a key pair already: `mgw cert install --force` replaces it", err, kvmName)
	}
	return err
}

// genKeys registers a new key and secret and returns them with the
// bootstrap URL of the env's region.
func (e *mgmtEnv) genKeys() (key, secret, bootstrap string, err error) {
	key, secret = randomHex(), randomHex()
	if err := e.m.Do(e.c.Context, http.MethodPost, e.baseURL("credential"), map[string]string{"key": key, "secret": secret}, nil); err != nil {
		return "", "", "", err
	}
	var region struct {
		Region string `json:"region"`
		Host   string `json:"host"`
	}
	if err := e.m.DoWithKey(e.c.Context, http.MethodGet, e.baseURL("region"), key, secret, nil, &region); err != nil {
		return "", "", "", err
	}
	bootstrap = e.baseURL("bootstrap")
	if region.Host != "" {
		if u, err := url.Parse(bootstrap); err == nil {
			u.Host = region.Host
			bootstrap = u.String()
		}
	}
	return key, secret, bootstrap, nil
}

func genkeysCommand() *cli.Command {
	return &cli.Command{
		Name:  "genkeys",
		Usage: "generate and register a key and secret for an org and env",
		Flags: mgmtFlags(true),
		Action: func(c *cli.Context) error {
			e := newMgmtEnv(c)
			key, secret, bootstrap, err := e.genKeys()
			if err != nil {
				return fail("genkeys", err)
			}
			fmt.Printf("key: %s\nsecret: %s\nbootstrap: %s\n", key, secret, bootstrap)
			return nil
		},
	}
}

func revokekeysCommand() *cli.Command {
	return &cli.Command{
		Name:  "revokekeys",
		Usage: "revoke a key (and its secret)",
		Flags: append(mgmtFlags(true),
			&cli.StringFlag{Name: flagKey, Aliases: []string{"k"}, Usage: "the key to revoke", EnvVars: []string{"EDGEMICRO_KEY"}, Required: true},
			&cli.StringFlag{Name: flagSecret, Aliases: []string{"s"}, Usage: "its secret (accepted, as edgemicro takes it)", EnvVars: []string{"EDGEMICRO_SECRET"}},
		),
		Action: func(c *cli.Context) error {
			e := newMgmtEnv(c)
			if err := e.m.Do(c.Context, http.MethodDelete, e.baseURL("credential"), map[string]string{"key": c.String(flagKey)}, nil); err != nil {
				return fail("revokekeys", err)
			}
			fmt.Println("revoked")
			return nil
		},
	}
}

func certCommand() *cli.Command {
	force := &cli.BoolFlag{Name: "force", Aliases: []string{"f"}, Usage: "replace an existing key pair"}
	return &cli.Command{
		Name:  "cert",
		Usage: "manage the JWT signing key pair in the microgateway KVM",
		Subcommands: []*cli.Command{
			{
				Name: "install", Usage: "generate a key pair and certificate and store them in the KVM",
				Flags: append(mgmtFlags(true), force),
				Action: func(c *cli.Context) error {
					if err := newMgmtEnv(c).installCert(c.Bool("force")); err != nil {
						return fail("cert install", err)
					}
					fmt.Println("installed a new key pair in KVM " + kvmName)
					return nil
				},
			},
			{
				Name: "check", Usage: "report whether the KVM holds a key pair",
				Flags: mgmtFlags(true),
				Action: func(c *cli.Context) error {
					e := newMgmtEnv(c)
					var got kvm
					err := e.m.Do(c.Context, http.MethodGet, e.kvmURL("/"+kvmName), nil, &got)
					if edge.IsStatus(err, http.StatusNotFound) {
						return cli.Exit("cert check: no key pair is installed (KVM "+kvmName+" does not exist): run `mgw cert install`", 1)
					}
					if err != nil {
						return fail("cert check", err)
					}
					names := map[string]bool{}
					for _, en := range got.Entry {
						names[en.Name] = true
					}
					if !names["private_key"] || !names["public_key"] {
						return cli.Exit("cert check: KVM "+kvmName+" lacks private_key or public_key: run `mgw cert install --force`", 1)
					}
					fmt.Println("a key pair is installed in KVM " + kvmName)
					return nil
				},
			},
			{
				Name: "delete", Usage: "delete the KVM and its key pair",
				Flags: mgmtFlags(true),
				Action: func(c *cli.Context) error {
					e := newMgmtEnv(c)
					if err := e.m.Do(c.Context, http.MethodDelete, e.kvmURL("/"+kvmName), nil, nil); err != nil {
						return fail("cert delete", err)
					}
					fmt.Println("deleted KVM " + kvmName)
					return nil
				},
			},
			{
				Name: "public-key", Usage: "print the public key edgemicro-auth serves",
				Flags: mgmtFlags(true),
				Action: func(c *cli.Context) error {
					e := newMgmtEnv(c)
					b, err := httpCall(c.Context, http.MethodGet, e.authURL()+"/publicKey", nil)
					if err != nil {
						return fail("cert public-key", err)
					}
					fmt.Print(string(b))
					return nil
				},
			},
		},
	}
}

func rotatekeyCommand() *cli.Command {
	return &cli.Command{
		Name:  "rotatekey",
		Usage: "install a new signing key pair with a new kid; tokens signed with the old one keep verifying until they expire",
		Flags: append(mgmtFlags(false),
			&cli.StringFlag{Name: flagKey, Aliases: []string{"k"}, Usage: "edgemicro key", EnvVars: []string{"EDGEMICRO_KEY"}, Required: true},
			&cli.StringFlag{Name: flagSecret, Aliases: []string{"s"}, Usage: "edgemicro secret", EnvVars: []string{"EDGEMICRO_SECRET"}, Required: true},
			&cli.StringFlag{Name: "kid", Aliases: []string{"i"}, Usage: "the new key's kid (default: a new one)"},
			&cli.IntFlag{Name: "nbf", Aliases: []string{"n"}, Usage: "minutes before the new key signs tokens"},
			&cli.StringFlag{Name: "privatekey", Aliases: []string{"p"}, Usage: "use this private key (PEM `FILE`) instead of a new one"},
			&cli.StringFlag{Name: "cert", Usage: "its certificate (PEM `FILE`), with --privatekey"},
		),
		Action: func(c *cli.Context) error {
			e := newMgmtEnv(c)
			var current kvmEntry
			if err := e.m.Do(c.Context, http.MethodGet, e.kvmURL("/"+kvmName+"/entries/private_key"), nil, &current); err != nil {
				if edge.IsStatus(err, http.StatusNotFound) {
					return fail("rotatekey", fmt.Errorf("%w; no key pair to rotate: run `mgw cert install` first", err))
				}
				return fail("rotatekey", err)
			}
			keyPEM, certPEM, err := rotationKeys(c.String("privatekey"), c.String("cert"), e.org+"-"+e.env)
			if err != nil {
				return fail("rotatekey", err)
			}
			kid := c.String("kid")
			if kid == "" {
				kid = randomHex()[:16]
			}
			body := map[string]any{"private_key": keyPEM, "public_key": certPEM, "kid": kid}
			if n := c.Int("nbf"); n > 0 {
				body["nbf"] = n
			}
			if err := e.m.DoWithKey(c.Context, http.MethodPost, e.authURL()+"/rotateKey", c.String(flagKey), c.String(flagSecret), body, nil); err != nil {
				return fail("rotatekey", err)
			}
			fmt.Println("rotated: new kid " + kid)
			return nil
		},
	}
}

// rotationKeys reads the given key pair, or makes a new one.
func rotationKeys(keyFile, certFile, cn string) (string, string, error) {
	if keyFile == "" && certFile == "" {
		return keyPair(cn)
	}
	if keyFile == "" || certFile == "" {
		return "", "", errors.New("--privatekey and --cert go together")
	}
	k, err := os.ReadFile(keyFile)
	if err != nil {
		return "", "", err
	}
	if _, err := oauth.ParsePrivateKey(k); err != nil {
		return "", "", err
	}
	crt, err := os.ReadFile(certFile)
	if err != nil {
		return "", "", err
	}
	if _, err := oauth.ParsePublicKey(crt); err != nil {
		return "", "", err
	}
	return string(k), string(crt), nil
}

func upgradekvmCommand() *cli.Command {
	return &cli.Command{
		Name:  "upgradekvm",
		Usage: "add what newer gateways need (private_key_kid) to the microgateway KVM",
		Flags: mgmtFlags(true),
		Action: func(c *cli.Context) error {
			e := newMgmtEnv(c)
			var got kvm
			if err := e.m.Do(c.Context, http.MethodGet, e.kvmURL("/"+kvmName), nil, &got); err != nil {
				return fail("upgradekvm", err)
			}
			has := map[string]bool{}
			for _, en := range got.Entry {
				has[en.Name] = true
			}
			if has["private_key_kid"] {
				fmt.Println("KVM " + kvmName + " is up to date")
				return nil
			}
			got.Name = kvmName
			got.Entry = append(got.Entry, kvmEntry{Name: "private_key_kid", Value: "1"})
			if err := e.m.Do(c.Context, http.MethodPut, e.kvmURL("/"+kvmName), got, nil); err != nil {
				return fail("upgradekvm", err)
			}
			fmt.Println("upgraded KVM " + kvmName + ": private_key_kid = 1")
			return nil
		},
	}
}

func upgradeauthCommand() *cli.Command {
	return &cli.Command{
		Name:  "upgradeauth",
		Usage: "import Apigee's edgemicro-auth bundle (--bundle) and deploy it as a new revision; without --bundle, report the revision deployed",
		Flags: append(append(mgmtFlags(true), &cli.StringFlag{Name: "proxy-name", Aliases: []string{"x"}, Value: "edgemicro-auth"}), bundleFlags()...),
		Action: func(c *cli.Context) error {
			e := newMgmtEnv(c)
			proxy := c.String("proxy-name")
			bundle, err := bundleFromFlag(c)
			if err != nil {
				return fail("upgradeauth", err)
			}
			rev, err := e.deployedRevision(proxy)
			if err != nil {
				return fail("upgradeauth", err)
			}
			if bundle == nil {
				if rev == "" {
					return fail("upgradeauth", notDeployed(e.org, e.env, proxy))
				}
				fmt.Printf("%s revision %s is deployed to %s/%s; to upgrade it, run upgradeauth again with --bundle: %s\n", proxy, rev, e.org, e.env, bundleHelp)
				return nil
			}
			was := "none was"
			if rev != "" {
				was = "revision " + rev + " was"
			}
			newRev, err := e.deployBundle(proxy, bundle, c.Duration("deploy-timeout"))
			if err != nil {
				return fail("upgradeauth", err)
			}
			fmt.Printf("%s revision %s is deployed to %s/%s (%s before)\n", proxy, newRev, e.org, e.env, was)
			return nil
		},
	}
}

func configureCommand() *cli.Command {
	return &cli.Command{
		Name:  "configure",
		Usage: "set mgw up for an org and env: check edgemicro-auth (or deploy it from --bundle), install the key pair, make a key and secret, write the config",
		Flags: append(append(mgmtFlags(true),
			&cli.StringFlag{Name: "proxy-name", Aliases: []string{"x"}, Value: "edgemicro-auth", Usage: "the auth proxy's name"},
		), bundleFlags()...),
		Action: func(c *cli.Context) error {
			e := newMgmtEnv(c)
			bundle, err := bundleFromFlag(c)
			if err != nil {
				return fail("configure", err)
			}
			if err := e.ensureAuthProxy(c.String("proxy-name"), bundle, c.Duration("deploy-timeout")); err != nil {
				return fail("configure", err)
			}
			err = e.m.Do(c.Context, http.MethodGet, e.kvmURL("/"+kvmName), nil, nil)
			switch {
			case edge.IsStatus(err, http.StatusNotFound):
				if err := e.installCert(false); err != nil {
					return fail("configure: installing the key pair", err)
				}
				fmt.Println("installed a new key pair in KVM " + kvmName)
			case err != nil:
				return fail("configure", err)
			}
			key, secret, bootstrap, err := e.genKeys()
			if err != nil {
				return fail("configure: making a key and secret", err)
			}
			dir := c.String(flagConfigDir)
			if dir == "" {
				home, _ := os.UserHomeDir()
				dir = filepath.Join(home, ".mgw")
			}
			path := filepath.Join(dir, e.org+"-"+e.env+"-config.toml")
			if err := os.MkdirAll(dir, 0o700); err != nil {
				return fail("configure", err)
			}
			if err := os.WriteFile(path, []byte(e.configTOML(bootstrap)), 0o600); err != nil {
				return fail("configure", err)
			}
			fmt.Printf("wrote %s\n\nThe following credentials are required to start mgw (shown once):\nkey: %s\nsecret: %s\n\nmgw start -o %s -e %s -k KEY -s SECRET\n",
				path, key, secret, e.org, e.env)
			return nil
		},
	}
}

// configTOML is the mgw.toml that configure writes, with the URLs of
// the Edge endpoints (docs/COMPATIBILITY.md) for the org and env.
func (e *mgmtEnv) configTOML(bootstrap string) string {
	auth := e.authURL()
	q := strconv.Quote
	return `# Written by ` + "`mgw configure`" + ` for ` + e.org + `/` + e.env + `.
[edge_config]
bootstrap = ` + q(bootstrap) + `
jwt_public_key = ` + q(auth+"/publicKey") + `
jwk_public_keys = ` + q(auth+"/jwkPublicKeys") + `
products = ` + q(auth+"/products") + `
managementUri = ` + q(e.c.String("mgmt-url")) + `
authUri = ` + q(e.c.String("auth-url")) + `
baseUri = ` + q(e.c.String("base-url")) + `
vaultName = "microgateway"
proxyPattern = "edgemicro_*"

[edgemicro]
port = 8000
max_connections = 1000
config_change_poll_interval = 600

[edgemicro.logging]
level = "info"
to_console = true

[edgemicro.plugins]
sequence = ["oauth"]

[oauth]
verify_api_key_url = ` + q(auth+"/verifyApiKey") + `

[analytics]
uri = ` + q(e.baseURL("axpublisher")) + `
bufferSize = 10000
batchSize = 500
flushInterval = 5000
`
}
