package integration

import (
	"archive/zip"
	"bytes"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
)

// testBundle is a tiny proxy bundle, made by the test: mgw ships none.
var testBundle = map[string]string{
	"apiproxy/edgemicro-auth.xml":      `<APIProxy name="edgemicro-auth"><Basepaths>/edgemicro-auth</Basepaths></APIProxy>`,
	"apiproxy/proxies/default.xml":     `<ProxyEndpoint name="default"><HTTPProxyConnection><BasePath>/edgemicro-auth</BasePath><VirtualHost>secure</VirtualHost></HTTPProxyConnection></ProxyEndpoint>`,
	"apiproxy/policies/Verify-Key.xml": `<VerifyAPIKey name="Verify-Key"/>`,
	"apiproxy/resources/jsc/answer.js": `context.setVariable("answer", 42);`,
}

// bundleDir writes testBundle under a new directory and returns the
// directory that holds apiproxy/.
func bundleDir(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	for name, body := range testBundle {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// bundleZip writes testBundle as a zip file and returns its path.
func bundleZip(t *testing.T) string {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for name, body := range testBundle {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Write([]byte(body))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "edgemicro-auth.zip")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// unzip returns the files of a zip body.
func unzip(t *testing.T, body string) map[string]string {
	t.Helper()
	r, err := zip.NewReader(strings.NewReader(body), int64(len(body)))
	if err != nil {
		t.Fatalf("the import's body is not a zip: %v", err)
	}
	out := map[string]string{}
	for _, f := range r.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		out[f.Name] = string(b)
	}
	return out
}

// callLines writes management calls as "METHOD path?query [content type]".
func callLines(calls []fakeedge.MgmtCall) []string {
	var out []string
	for _, c := range calls {
		l := c.Method + " " + c.Path
		if c.Query != "" {
			l += "?" + c.Query
		}
		if c.Method != "GET" && c.Method != "DELETE" {
			l += " [" + c.ContentType + "]"
		}
		out = append(out, l)
	}
	return out
}

func sameCalls(t *testing.T, got []fakeedge.MgmtCall, want ...string) {
	t.Helper()
	lines := callLines(got)
	if strings.Join(lines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("management calls:\n  %s\nwant:\n  %s", strings.Join(lines, "\n  "), strings.Join(want, "\n  "))
	}
}

const (
	authDeployments = "GET /v1/o/myorg/apis/edgemicro-auth/deployments"
	importCall      = "POST /v1/o/myorg/apis?action=import&validate=false&name=edgemicro-auth [application/octet-stream]"
	kvmPath         = "/v1/organizations/myorg/environments/test/keyvaluemaps"
)

func deployCall(rev int) string {
	return fmt.Sprintf("POST /v1/o/myorg/e/test/apis/edgemicro-auth/revisions/%d/deployments [application/x-www-form-urlencoded]", rev)
}

func deployState(rev int) string {
	return fmt.Sprintf("GET /v1/o/myorg/e/test/apis/edgemicro-auth/revisions/%d/deployments", rev)
}

// TestConfigureDeploysTheBundle: on an org without edgemicro-auth,
// configure --bundle DIR imports the directory as one zip, deploys the
// new revision, waits until Edge says it is deployed, then installs the
// key pair and makes a key and secret as without the flag.
func TestConfigureDeploysTheBundle(t *testing.T) {
	fe := startFakeEdge(t)
	fe.SetAuthDeployed(false)
	in := newInstance(t, "")
	user, pass, _ := fe.MgmtUser()
	out, code := in.mgwRaw(append([]string{"configure", "--bundle", bundleDir(t)}, mgmtArgs(fe, in, "-u", user, "-p", pass)...)...)
	if code != 0 {
		t.Fatalf("configure: exit %d\n%s", code, out)
	}
	if strings.Contains(out, pass) {
		t.Fatalf("configure printed the password:\n%s", out)
	}
	calls := fe.MgmtCalls()
	sameCalls(t, calls,
		authDeployments,
		importCall,
		deployCall(1),
		deployState(1),
		"GET "+kvmPath+"/microgateway",
		"POST "+kvmPath+" [application/json]",
		"POST /edgemicro/credential/organization/myorg/environment/test [application/json]",
		"GET /edgemicro/region/organization/myorg/environment/test",
	)
	if got := unzip(t, calls[1].Body); fmt.Sprint(got) != fmt.Sprint(testBundle) {
		t.Fatalf("the imported zip holds %v, want %v", keys(got), keys(testBundle))
	}
	if calls[2].Body != "action=deploy&delay=0&override=true" {
		t.Fatalf("deployment form %q", calls[2].Body)
	}
	for _, c := range calls[:4] {
		if c.Auth != "basic "+user {
			t.Fatalf("%s %s authenticated as %q", c.Method, c.Path, c.Auth)
		}
	}
	if revs, deployed := fe.APIRevisions("edgemicro-auth"); revs != 1 || deployed != 1 {
		t.Fatalf("edgemicro-auth has %d revisions, %d deployed; want revision 1 deployed", revs, deployed)
	}
	if !strings.Contains(out, "edgemicro-auth revision 1 is deployed to myorg/test") || !strings.Contains(out, "secret: ") {
		t.Fatalf("configure printed:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(in.dir, "myorg-test-config.toml")); err != nil {
		t.Fatal(err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestConfigureWithTheProxyDeployed: with edgemicro-auth deployed,
// configure --bundle uploads nothing.
func TestConfigureWithTheProxyDeployed(t *testing.T) {
	fe := startFakeEdge(t)
	in := newInstance(t, "")
	user, pass, _ := fe.MgmtUser()
	out, code := in.mgwRaw(append([]string{"configure", "--bundle", bundleZip(t)}, mgmtArgs(fe, in, "-u", user, "-p", pass)...)...)
	if code != 0 {
		t.Fatalf("configure: exit %d\n%s", code, out)
	}
	sameCalls(t, fe.MgmtCalls(),
		authDeployments,
		"GET "+kvmPath+"/microgateway",
		"POST "+kvmPath+" [application/json]",
		"POST /edgemicro/credential/organization/myorg/environment/test [application/json]",
		"GET /edgemicro/region/organization/myorg/environment/test",
	)
	if revs, deployed := fe.APIRevisions("edgemicro-auth"); revs != 3 || deployed != 3 {
		t.Fatalf("edgemicro-auth has %d revisions, %d deployed; want 3 of 3 untouched", revs, deployed)
	}
	if !strings.Contains(out, "edgemicro-auth revision 3 is deployed to myorg/test already: the bundle was not imported") {
		t.Fatalf("configure printed:\n%s", out)
	}
}

// TestUpgradeauthDeploysANewRevision: upgradeauth --bundle FILE.zip
// imports the zip as it is as revision 4, deploys it over revision 3 and
// polls until Edge reports it deployed (here, on the second poll).
func TestUpgradeauthDeploysANewRevision(t *testing.T) {
	fe := startFakeEdge(t)
	fe.SetDeployPending(1)
	in := newInstance(t, "")
	_, _, token := fe.MgmtUser()
	file := bundleZip(t)
	out, code := in.mgwRaw(append([]string{"upgradeauth", "--bundle", file}, mgmtArgs(fe, in, "-t", token)...)...)
	if code != 0 {
		t.Fatalf("upgradeauth: exit %d\n%s", code, out)
	}
	if strings.Contains(out, token) {
		t.Fatalf("upgradeauth printed the token:\n%s", out)
	}
	calls := fe.MgmtCalls()
	sameCalls(t, calls, authDeployments, importCall, deployCall(4), deployState(4), deployState(4))
	zipped, _ := os.ReadFile(file)
	if calls[1].Body != string(zipped) || calls[1].Auth != "bearer "+token {
		t.Fatal("the zip was not imported as it is, with the token")
	}
	if revs, deployed := fe.APIRevisions("edgemicro-auth"); revs != 4 || deployed != 4 {
		t.Fatalf("edgemicro-auth has %d revisions, %d deployed; want revision 4 deployed", revs, deployed)
	}
	if !strings.Contains(out, "edgemicro-auth revision 4 is deployed to myorg/test (revision 3 was before)") {
		t.Fatalf("upgradeauth printed:\n%s", out)
	}
}

// TestBundleVirtualHosts: -v replaces the virtual hosts of the bundle's
// proxy endpoints before the import, as edgemicro edits them.
func TestBundleVirtualHosts(t *testing.T) {
	fe := startFakeEdge(t)
	in := newInstance(t, "")
	user, pass, _ := fe.MgmtUser()
	out, code := in.mgwRaw(append([]string{"upgradeauth", "-v", "internal,secure", "--bundle", bundleDir(t)}, mgmtArgs(fe, in, "-u", user, "-p", pass)...)...)
	if code != 0 {
		t.Fatalf("upgradeauth: exit %d\n%s", code, out)
	}
	calls := fe.MgmtCalls()
	sameCalls(t, calls, authDeployments, importCall, deployCall(4), deployState(4))
	files := unzip(t, calls[1].Body)
	want := strings.Replace(testBundle["apiproxy/proxies/default.xml"], "<VirtualHost>secure</VirtualHost>",
		"<VirtualHost>internal</VirtualHost><VirtualHost>secure</VirtualHost>", 1)
	if files["apiproxy/proxies/default.xml"] != want || files["apiproxy/edgemicro-auth.xml"] != testBundle["apiproxy/edgemicro-auth.xml"] {
		t.Fatalf("imported proxy endpoint %q, want %q", files["apiproxy/proxies/default.xml"], want)
	}
}

// TestBundleFailures: a deployment Edge refuses is reported with Edge's
// message and exit 1, and configure stops there; a --bundle that is not
// a proxy bundle is refused before any call; without --bundle on an org
// without the proxy, the message says where to get it and how to pass it.
func TestBundleFailures(t *testing.T) {
	fe := startFakeEdge(t)
	fe.SetAuthDeployed(false)
	in := newInstance(t, "")
	user, pass, _ := fe.MgmtUser()
	args := func(cmd string, extra ...string) []string {
		return append(append([]string{cmd}, extra...), mgmtArgs(fe, in, "-u", user, "-p", pass)...)
	}
	notBundle := t.TempDir()
	_ = os.WriteFile(filepath.Join(notBundle, "README.md"), []byte("no proxy here"), 0o644)
	notZip := filepath.Join(notBundle, "README.md")
	edgeMessage := "Deployment of revision 1 of edgemicro-auth to test failed: base path /edgemicro-auth conflicts with edgemicro-other"
	for _, tc := range []struct {
		desc  string
		args  []string
		setup func()
		want  []string
		calls []string
	}{
		{"deployment refused", args("configure", "--bundle", bundleDir(t)),
			func() {
				fe.FailNextMgmtWith("POST /v1/o/{org}/e/{env}/apis/{api}/revisions/{rev}/deployments", 400, edgeMessage)
			},
			[]string{"HTTP 400: " + edgeMessage, "revision 1 (imported, not deployed)"},
			[]string{authDeployments, importCall, deployCall(1)}},
		{"deployment fails on Edge", args("upgradeauth", "--bundle", bundleDir(t)),
			func() {
				fe.SetAuthDeployed(true)
				fe.SetDeployError("Call timed out; either server is down or server is not reachable")
			},
			[]string{"Edge reports the deployment of revision 4 in state error: Call timed out; either server is down or server is not reachable"},
			[]string{authDeployments, importCall, deployCall(4), deployState(4)}},
		{"import refused", args("upgradeauth", "--bundle", bundleDir(t)),
			func() {
				fe.FailNextMgmtWith("POST /v1/o/{org}/apis", 403, "User admin@example.com is not allowed to import")
			},
			[]string{"importing the bundle", "HTTP 403: User admin@example.com is not allowed to import"},
			[]string{authDeployments, importCall}},
		{"directory without apiproxy", args("configure", "--bundle", notBundle), nil,
			[]string{"is neither an apiproxy directory nor holds one"}, nil},
		{"bad virtual host", args("configure", "-v", "in ternal", "--bundle", bundleDir(t)), nil,
			[]string{`--virtual-hosts: "in ternal" is not a virtual host name`}, nil},
		{"not a zip", args("upgradeauth", "--bundle", notZip), nil,
			[]string{"not a zip file"}, nil},
		{"missing file", args("configure", "--bundle", filepath.Join(notBundle, "nosuch.zip")), nil,
			[]string{"nosuch.zip: no such file or directory", "npm pack microgateway-edgeauth"}, nil},
		{"no bundle, no proxy", args("configure"), nil,
			[]string{"edgemicro-auth is not deployed to myorg/test; mgw does not ship Apigee's edgemicro-auth proxy",
				"microgateway-edgeauth/apiproxy", "--bundle DIR"},
			[]string{authDeployments}},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			fe.SetAuthDeployed(false)
			defer fe.SetAuthDeployed(false)
			before := len(fe.MgmtCalls())
			if tc.setup != nil {
				tc.setup()
			}
			out, code := in.mgwRaw(tc.args...)
			if code != 1 || strings.Count(strings.TrimSpace(out), "\n") > 3 {
				t.Fatalf("exit %d, output:\n%s", code, out)
			}
			for _, w := range tc.want {
				if !strings.Contains(out, w) {
					t.Fatalf("output:\n%s\nwant it to say %q", out, w)
				}
			}
			if strings.Contains(out, pass) {
				t.Fatal("the password was printed")
			}
			sameCalls(t, fe.MgmtCalls()[before:], tc.calls...)
		})
	}
}
