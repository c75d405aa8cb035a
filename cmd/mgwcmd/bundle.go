package mgwcmd

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/urfave/cli/v2"
)

// The edgemicro-auth proxy is Apigee's: mgw never ships a copy. With
// --bundle, configure and upgradeauth import the bundle the operator
// points at and deploy it with the calls edgemicro makes (through
// apigeetool): the import of one zip, then the deployment of that
// revision with override, then a wait until Edge reports it deployed.

// maxBundle bounds what --bundle reads (Apigee's edgemicro-auth bundle is
// under 1 MiB).
const maxBundle = 64 << 20

// defaultDeployTimeout bounds the import, the deployment and the wait.
const defaultDeployTimeout = 5 * time.Minute

// bundleHelp says where Apigee's edgemicro-auth bundle is and how to pass it.
const bundleHelp = "mgw does not ship Apigee's edgemicro-auth proxy: get its bundle, the apiproxy directory " +
	"of the npm package microgateway-edgeauth (in an edgemicro install: " +
	"$(npm root -g)/edgemicro/node_modules/microgateway-edgeauth/apiproxy; or run " +
	"`npm pack microgateway-edgeauth && tar xzf microgateway-edgeauth-*.tgz` and use package/apiproxy), " +
	"and pass it with --bundle DIR (or a zip of that apiproxy directory)"

// bundleFlags are --bundle, --deploy-timeout and --virtual-hosts (named
// as edgemicro's configure and upgradeauth name it, too).
func bundleFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{Name: "bundle", Usage: "import and deploy the edgemicro-auth proxy from Apigee's bundle at `PATH`: its apiproxy directory, a directory holding it, or a zip of it"},
		&cli.DurationFlag{Name: "deploy-timeout", Value: defaultDeployTimeout, Usage: "how long the import and deployment of --bundle may take in all (`DURATION`, e.g. 10m)"},
		&cli.StringFlag{Name: "virtual-hosts", Aliases: []string{"v", "virtualHosts", "virtualhost"}, Usage: "with --bundle, the comma-separated virtual hosts the proxy listens on, in place of those its proxy endpoints name (default: the bundle's own)"},
	}
}

// readBundle returns the zip to import from a --bundle argument: a zip
// file as it is, after checking it holds a proxy bundle, or a directory
// (apiproxy itself, or one that holds it) zipped in memory.
func readBundle(arg string) ([]byte, error) {
	st, err := os.Stat(arg)
	if err != nil {
		return nil, fmt.Errorf("reading the bundle: %w; %s", err, bundleHelp)
	}
	var z []byte
	if st.IsDir() {
		z, err = zipProxyDir(arg)
	} else {
		z, err = readZip(arg, st.Size())
	}
	if err != nil {
		return nil, fmt.Errorf("reading the bundle %s: %w", arg, err)
	}
	return z, nil
}

func readZip(name string, size int64) ([]byte, error) {
	if size > maxBundle {
		return nil, fmt.Errorf("it is %d bytes, more than the %d a proxy bundle may have", size, maxBundle)
	}
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	if err := checkZip(b); err != nil {
		return nil, err
	}
	return b, nil
}

// checkZip makes sure b is a zip of a proxy bundle.
func checkZip(b []byte) error {
	r, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return fmt.Errorf("not a zip file (%w): give the zip of an apiproxy directory, or the directory", err)
	}
	names := make([]string, 0, len(r.File))
	for _, f := range r.File {
		names = append(names, f.Name)
	}
	return checkBundle(names)
}

// zipProxyDir zips the apiproxy directory at or under dir, its files
// named apiproxy/..., as Edge's import wants them.
func zipProxyDir(dir string) ([]byte, error) {
	root := dir
	if st, err := os.Stat(filepath.Join(dir, "apiproxy")); err == nil && st.IsDir() {
		root = filepath.Join(dir, "apiproxy")
	} else if filepath.Base(filepath.Clean(dir)) != "apiproxy" {
		return nil, errors.New("it is neither an apiproxy directory nor holds one: pass the directory apiproxy (or the one above it)")
	}
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	var names []string
	total := int64(0)
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p) // through a symbolic link
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return fmt.Errorf("%s is not a regular file", p)
		}
		if total += st.Size(); total > maxBundle {
			return fmt.Errorf("it holds more than the %d bytes a proxy bundle may have", maxBundle)
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		name := path.Join("apiproxy", filepath.ToSlash(rel))
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		f, err := w.CreateHeader(&zip.FileHeader{Name: name, Method: zip.Deflate, Modified: st.ModTime()})
		if err != nil {
			return err
		}
		if _, err := f.Write(b); err != nil {
			return err
		}
		names = append(names, name)
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := checkBundle(names); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// checkBundle makes sure the zip's files are a proxy bundle: the root
// descriptor apiproxy/NAME.xml and at least one proxy endpoint
// apiproxy/proxies/NAME.xml.
func checkBundle(names []string) error {
	root, endpoint := false, false
	for _, n := range names {
		if strings.HasPrefix(n, "/") || strings.Contains(n, "..") || strings.Contains(n, `\`) {
			return fmt.Errorf("it holds a file named %q, which no proxy bundle has", n)
		}
		dir, file := path.Split(n)
		switch {
		case dir == "apiproxy/" && strings.HasSuffix(file, ".xml"):
			root = true
		case dir == "apiproxy/proxies/" && strings.HasSuffix(file, ".xml"):
			endpoint = true
		}
	}
	if !root || !endpoint {
		return errors.New("it is not an API proxy bundle: it needs apiproxy/NAME.xml and apiproxy/proxies/*.xml at its top; " + bundleHelp)
	}
	return nil
}

// bundleFromFlag reads --bundle, or returns nil when it was not given.
// A --virtual-hosts given on the command line replaces the virtual hosts
// of the bundle's proxy endpoints, as edgemicro edits them.
func bundleFromFlag(c *cli.Context) ([]byte, error) {
	arg := c.String("bundle")
	if arg == "" {
		return nil, nil
	}
	b, err := readBundle(arg)
	if err != nil || !c.IsSet("virtual-hosts") {
		return b, err
	}
	var hosts []string
	for _, h := range strings.Split(c.String("virtual-hosts"), ",") {
		if h = strings.TrimSpace(h); h == "" {
			continue
		}
		if !virtualHostName.MatchString(h) {
			return nil, fmt.Errorf("--virtual-hosts: %q is not a virtual host name (letters, digits, '.', '-', '_')", h)
		}
		hosts = append(hosts, h)
	}
	if len(hosts) == 0 {
		return nil, errors.New("--virtual-hosts names no virtual host")
	}
	if b, err = setVirtualHosts(b, hosts); err != nil {
		return nil, fmt.Errorf("setting the virtual hosts of the bundle %s: %w", arg, err)
	}
	return b, nil
}

var (
	virtualHostName = regexp.MustCompile(`^[A-Za-z0-9._-]+$`)
	// virtualHostRE is one VirtualHost element with the line break and
	// indentation before it, if any.
	virtualHostRE = regexp.MustCompile(`(\r?\n[ \t]*)?<VirtualHost>[^<]*</VirtualHost>`)
)

// setVirtualHosts rewrites the zip with the VirtualHost elements of every
// proxy endpoint (apiproxy/proxies/*.xml) replaced by hosts, one per line
// where the first one was.
func setVirtualHosts(z []byte, hosts []string) ([]byte, error) {
	r, err := zip.NewReader(bytes.NewReader(z), int64(len(z)))
	if err != nil {
		return nil, err
	}
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	edited, total := 0, int64(0)
	for _, f := range r.File {
		rc, err := f.Open()
		if err != nil {
			return nil, err
		}
		b, err := io.ReadAll(io.LimitReader(rc, maxBundle-total+1))
		rc.Close()
		if err != nil {
			return nil, err
		}
		if total += int64(len(b)); total > maxBundle {
			return nil, fmt.Errorf("it unpacks to more than the %d bytes a proxy bundle may have", maxBundle)
		}
		if dir, file := path.Split(f.Name); dir == "apiproxy/proxies/" && strings.HasSuffix(file, ".xml") {
			if nb, ok := replaceVirtualHosts(b, hosts); ok {
				b, edited = nb, edited+1
			}
		}
		out, err := w.CreateHeader(&zip.FileHeader{Name: f.Name, Method: zip.Deflate, Modified: f.Modified})
		if err != nil {
			return nil, err
		}
		if _, err := out.Write(b); err != nil {
			return nil, err
		}
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if edited == 0 {
		return nil, errors.New("no proxy endpoint in apiproxy/proxies names a VirtualHost to replace")
	}
	return buf.Bytes(), nil
}

func replaceVirtualHosts(b []byte, hosts []string) ([]byte, bool) {
	locs := virtualHostRE.FindAllSubmatchIndex(b, -1)
	if len(locs) == 0 {
		return b, false
	}
	var out bytes.Buffer
	last := 0
	for i, l := range locs {
		out.Write(b[last:l[0]])
		last = l[1]
		if i > 0 {
			continue // the first one's place holds them all
		}
		sep := ""
		if l[2] >= 0 {
			sep = string(b[l[2]:l[3]])
		}
		for j, h := range hosts {
			if j > 0 || sep != "" {
				out.WriteString(sep)
			}
			out.WriteString("<VirtualHost>" + h + "</VirtualHost>")
		}
	}
	out.Write(b[last:])
	return out.Bytes(), true
}

// deployBundle imports the bundle as a new revision of proxy, deploys that
// revision to the env in place of the one deployed (if any), and waits
// until Edge reports it deployed, all within timeout.
func (e *mgmtEnv) deployBundle(proxy string, bundle []byte, timeout time.Duration) (string, error) {
	deadline := time.Now().Add(timeout)
	slow := e.m.WithTimeout(timeout)
	fmt.Printf("importing %s (%d bytes) into %s\n", proxy, len(bundle), e.org)
	var imported struct {
		Revision json.RawMessage `json:"revision"`
	}
	importURL := e.mgmtURL("/v1/o/%s/apis?action=import&validate=false&name=%s", url.PathEscape(e.org), url.QueryEscape(proxy))
	if err := slow.DoRaw(e.c.Context, http.MethodPost, importURL, "application/octet-stream", bundle, &imported); err != nil {
		return "", fmt.Errorf("importing the bundle: %w", err)
	}
	rev := strings.Trim(string(imported.Revision), `"`)
	if rev == "" || strings.Trim(rev, "0123456789") != "" {
		return "", fmt.Errorf("importing the bundle: Edge's answer names no revision (%q)", imported.Revision)
	}
	fmt.Printf("deploying %s revision %s to %s/%s\n", proxy, rev, e.org, e.env)
	deployURL := e.mgmtURL("/v1/o/%s/e/%s/apis/%s/revisions/%s/deployments", url.PathEscape(e.org), url.PathEscape(e.env), url.PathEscape(proxy), rev)
	// As apigeetool deploys: a form, replacing the deployed revision at once.
	form := url.Values{"action": {"deploy"}, "override": {"true"}, "delay": {"0"}}
	// The answer is not needed: the polls below say how it went.
	if err := slow.WithTimeout(max(time.Second, time.Until(deadline))).DoRaw(e.c.Context, http.MethodPost, deployURL, "application/x-www-form-urlencoded", []byte(form.Encode()), nil); err != nil {
		return rev, fmt.Errorf("deploying revision %s (imported, not deployed): %w", rev, err)
	}
	state := ""
	for pause := time.Duration(0); ; pause = min(max(2*pause, time.Second), 5*time.Second) {
		if time.Now().Add(pause).After(deadline) {
			return rev, fmt.Errorf("revision %s was not deployed after %v (last state %q): see the deployment in Edge's UI, or wait longer with --deploy-timeout", rev, timeout, state)
		}
		if pause > 0 {
			select {
			case <-e.c.Context.Done():
				return rev, e.c.Context.Err()
			case <-time.After(pause):
			}
		}
		var answer map[string]any
		if err := e.m.Do(e.c.Context, http.MethodGet, deployURL, nil, &answer); err != nil {
			return rev, fmt.Errorf("waiting for revision %s to deploy: %w", rev, err)
		}
		state, _ = answer["state"].(string)
		switch state {
		case "deployed":
			return rev, nil
		case "error", "failed":
			return rev, fmt.Errorf("Edge reports the deployment of revision %s in state %s: %s", rev, state, deploymentError(answer))
		}
	}
}

// deploymentError takes the reason out of Edge's account of a failed
// deployment: its message, its errors, or a message processor's error.
func deploymentError(answer map[string]any) string {
	if m, ok := answer["message"].(string); ok && m != "" {
		return m
	}
	var reasons []string
	if errs, ok := answer["errors"].([]any); ok {
		for _, e := range errs {
			if m, ok := e.(string); ok && m != "" {
				reasons = append(reasons, m)
			}
		}
	}
	if servers, ok := answer["server"].([]any); ok {
		for _, s := range servers {
			if m, ok := s.(map[string]any); ok {
				if e, ok := m["error"].(string); ok && e != "" && !slices.Contains(reasons, e) {
					reasons = append(reasons, e)
				}
			}
		}
	}
	if len(reasons) == 0 {
		return "no reason given"
	}
	return strings.Join(reasons, "; ")
}

// ensureAuthProxy is configure's first step: it reports the revision of
// proxy deployed to the env, importing and deploying the bundle first
// when there is none and one was given.
func (e *mgmtEnv) ensureAuthProxy(proxy string, bundle []byte, timeout time.Duration) error {
	rev, err := e.deployedRevision(proxy)
	if err != nil {
		return err
	}
	switch {
	case rev != "" && bundle != nil:
		fmt.Printf("%s revision %s is deployed to %s/%s already: the bundle was not imported (`mgw upgradeauth --bundle` deploys a new revision)\n", proxy, rev, e.org, e.env)
	case rev != "":
		fmt.Printf("%s revision %s is deployed to %s/%s\n", proxy, rev, e.org, e.env)
	case bundle == nil:
		return notDeployed(e.org, e.env, proxy)
	default:
		rev, err := e.deployBundle(proxy, bundle, timeout)
		if err != nil {
			return err
		}
		fmt.Printf("%s revision %s is deployed to %s/%s\n", proxy, rev, e.org, e.env)
	}
	return nil
}

func notDeployed(org, env, proxy string) error {
	return fmt.Errorf("%s is not deployed to %s/%s; %s", proxy, org, env, bundleHelp)
}
