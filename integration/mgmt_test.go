package integration

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/mgw-gateway/mgw/integration/fakeedge"
)

// mgmtArgs are the flags every management command gets in these tests:
// the fake org for the management API, the edgemicro services and
// edgemicro-auth.
func mgmtArgs(fe *fakeedge.Server, in *instance, auth ...string) []string {
	return append([]string{
		"-o", fe.Org, "-e", fe.Env, "--mgmt-url", fe.URL,
		"--base-url", fe.URL + "/edgemicro/%s/organization/%s/environment/%s",
		"--auth-url", fe.URL + "/edgemicro-auth", "--config-dir", in.dir,
	}, auth...)
}

// TestManagementCommands: each command sends exactly the documented
// method, path, auth and body.
func TestManagementCommands(t *testing.T) {
	fe := startFakeEdge(t)
	in := newInstance(t, "")
	user, pass, token := fe.MgmtUser()
	basic := []string{"-u", user, "-p", pass}
	run := func(args ...string) string {
		t.Helper()
		out, code := in.mgwRaw(args...)
		if code != 0 {
			t.Fatalf("mgw %s: exit %d\n%s", args[0], code, out)
		}
		if strings.Contains(out, pass) || strings.Contains(out, token) {
			t.Fatalf("mgw %s printed a password or token:\n%s", args[0], out)
		}
		return out
	}
	last := func(n int) []fakeedge.MgmtCall {
		calls := fe.MgmtCalls()
		return calls[len(calls)-n:]
	}
	expect := func(got fakeedge.MgmtCall, method, path, auth string) {
		t.Helper()
		if got.Method != method || got.Path != path || got.Auth != auth {
			t.Fatalf("call %s %s (auth %q), want %s %s (auth %q)", got.Method, got.Path, got.Auth, method, path, auth)
		}
	}
	kvm := "/v1/organizations/myorg/environments/test/keyvaluemaps"

	run(append([]string{"cert", "install"}, mgmtArgs(fe, in, basic...)...)...)
	c := last(1)[0]
	expect(c, "POST", kvm, "basic "+user)
	var body struct {
		Name  string `json:"name"`
		Entry []struct{ Name, Value string }
	}
	if err := json.Unmarshal([]byte(c.Body), &body); err != nil || body.Name != "microgateway" || len(body.Entry) != 3 ||
		!strings.Contains(fe.KVM()["private_key"], "PRIVATE KEY") || !strings.Contains(fe.KVM()["public_key"], "CERTIFICATE") {
		t.Fatalf("cert install body %s, KVM %v", c.Body, fe.KVM())
	}

	run(append([]string{"cert", "check"}, mgmtArgs(fe, in, "-t", token)...)...)
	expect(last(1)[0], "GET", kvm+"/microgateway", "bearer "+token)

	out := run(append([]string{"genkeys"}, mgmtArgs(fe, in, basic...)...)...)
	calls := last(2)
	expect(calls[0], "POST", "/edgemicro/credential/organization/myorg/environment/test", "basic "+user)
	key := regexp.MustCompile(`key: ([0-9a-f]{64})`).FindStringSubmatch(out)
	secret := regexp.MustCompile(`secret: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if key == nil || secret == nil || !strings.Contains(out, "bootstrap: "+fe.URL+"/edgemicro/bootstrap/organization/myorg/environment/test") {
		t.Fatalf("genkeys printed:\n%s", out)
	}
	expect(calls[1], "GET", "/edgemicro/region/organization/myorg/environment/test", "basic-key "+key[1])
	if calls[0].Body != fmt.Sprintf(`{"key":%q,"secret":%q}`, key[1], secret[1]) {
		t.Fatalf("genkeys calls: %+v", calls)
	}

	run(append([]string{"rotatekey", "-k", key[1], "-s", secret[1], "-i", "kid-2", "--password", pass}, mgmtArgs(fe, in, "-u", user)...)...)
	calls = last(2)
	expect(calls[0], "GET", kvm+"/microgateway/entries/private_key", "basic "+user)
	expect(calls[1], "POST", "/edgemicro-auth/rotateKey", "basic-key "+key[1])
	var rk struct {
		PrivateKey string `json:"private_key"`
		PublicKey  string `json:"public_key"`
		Kid        string `json:"kid"`
	}
	if err := json.Unmarshal([]byte(calls[1].Body), &rk); err != nil || !strings.Contains(rk.PrivateKey, "PRIVATE KEY") ||
		!strings.Contains(rk.PublicKey, "CERTIFICATE") || rk.Kid != "kid-2" {
		t.Fatalf("rotateKey body %s", calls[1].Body)
	}
	if fe.KVM()["private_key_kid"] != "kid-2" || fe.KVM()["private_key_kid_old"] != "1" {
		t.Fatalf("after rotatekey the KVM is %v", fe.KVM())
	}

	run(append([]string{"upgradekvm"}, mgmtArgs(fe, in, basic...)...)...)
	expect(last(1)[0], "GET", kvm+"/microgateway", "basic "+user) // up to date: nothing to write
	old := fe.KVM()
	fe.SetKVM(map[string]string{"private_key": old["private_key"], "public_key": old["public_key"]}) // a KVM from before kids
	run(append([]string{"upgradekvm"}, mgmtArgs(fe, in, basic...)...)...)
	calls = last(2)
	expect(calls[0], "GET", kvm+"/microgateway", "basic "+user)
	expect(calls[1], "PUT", kvm+"/microgateway", "basic "+user)
	if fe.KVM()["private_key_kid"] != "1" || !strings.Contains(calls[1].Body, `"name":"microgateway"`) {
		t.Fatalf("upgradekvm wrote %s", calls[1].Body)
	}

	run(append([]string{"upgradeauth"}, mgmtArgs(fe, in, basic...)...)...)
	expect(last(1)[0], "GET", "/v1/o/myorg/apis/edgemicro-auth/deployments", "basic "+user)

	run(append([]string{"revokekeys", "-k", key[1]}, mgmtArgs(fe, in, basic...)...)...)
	c = last(1)[0]
	expect(c, "DELETE", "/edgemicro/credential/organization/myorg/environment/test", "basic "+user)
	if c.Body != fmt.Sprintf(`{"key":%q}`, key[1]) {
		t.Fatalf("revokekeys body %s", c.Body)
	}

	if out := run(append([]string{"cert", "public-key"}, mgmtArgs(fe, in, basic...)...)...); !strings.HasPrefix(out, "-----BEGIN CERTIFICATE") {
		t.Fatalf("cert public-key printed %q", out)
	}

	run(append([]string{"cert", "delete"}, mgmtArgs(fe, in, basic...)...)...)
	expect(last(1)[0], "DELETE", kvm+"/microgateway", "basic "+user)
	if fe.KVM() != nil {
		t.Fatal("cert delete left the KVM")
	}
}

// TestManagementErrors: 401, 404 and 409 answers give a clear message and
// exit 1, and never print the password.
func TestManagementErrors(t *testing.T) {
	fe := startFakeEdge(t)
	in := newInstance(t, "")
	user, pass, _ := fe.MgmtUser()
	for _, tc := range []struct {
		desc  string
		args  []string
		setup func()
		want  string
	}{
		{"wrong password", append([]string{"cert", "check"}, mgmtArgs(fe, in, "-u", user, "-p", "wrong")...), nil,
			"HTTP 401: Invalid credentials (check the username and password, or the token)"},
		{"no KVM", append([]string{"cert", "check"}, mgmtArgs(fe, in, "-u", user, "-p", pass)...), nil,
			"no key pair is installed"},
		{"unknown org", append([]string{"cert", "delete"}, append(mgmtArgs(fe, in, "-u", user, "-p", pass), "-o", "nosuchorg")...), nil,
			"HTTP 404: Organization nosuchorg does not exist"},
		{"KVM exists", append([]string{"cert", "install"}, mgmtArgs(fe, in, "-u", user, "-p", pass)...),
			func() { in.mgwRaw(append([]string{"cert", "install"}, mgmtArgs(fe, in, "-u", user, "-p", pass)...)...) },
			"HTTP 409: KeyValueMap microgateway already exists (it exists already); the KVM microgateway holds a key pair already: `mgw cert install --force` replaces it"},
		{"auth proxy not deployed", append([]string{"configure"}, mgmtArgs(fe, in, "-u", user, "-p", pass)...),
			func() { fe.SetAuthDeployed(false) },
			"edgemicro-auth is not deployed to myorg/test; mgw does not ship Apigee's edgemicro-auth proxy"},
		{"no credentials", append([]string{"genkeys"}, mgmtArgs(fe, in)...), nil,
			"management calls need -u USER and -p PASSWORD, or -t TOKEN"},
	} {
		t.Run(tc.desc, func(t *testing.T) {
			if tc.setup != nil {
				tc.setup()
			}
			out, code := in.mgwRaw(tc.args...)
			if code != 1 || !strings.Contains(out, tc.want) {
				t.Fatalf("exit %d, output:\n%s\nwant it to say %q", code, out, tc.want)
			}
			if strings.Contains(out, pass) {
				t.Fatal("the password was printed")
			}
		})
	}
}

// TestConfigureThenStart: `mgw configure` against the fake org, then
// `mgw start` with the key and secret it printed serves a request.
func TestConfigureThenStart(t *testing.T) {
	fe, _ := helloEdge(t)
	in := newInstance(t, "")
	user, pass, _ := fe.MgmtUser()
	out, code := in.mgwRaw(append([]string{"configure"}, mgmtArgs(fe, in, "-u", user, "-p", pass)...)...)
	if code != 0 {
		t.Fatalf("configure: %d\n%s", code, out)
	}
	key := regexp.MustCompile(`key: ([0-9a-f]{64})`).FindStringSubmatch(out)
	secret := regexp.MustCompile(`secret: ([0-9a-f]{64})`).FindStringSubmatch(out)
	if key == nil || secret == nil || strings.Count(out, secret[1]) != 1 {
		t.Fatalf("configure must print the key and secret once:\n%s", out)
	}
	if _, err := os.Stat(filepath.Join(in.dir, "myorg-test-config.toml")); err != nil {
		t.Fatal(err)
	}
	// Run on the instance's port, without writing mgw.toml: the file
	// configure wrote is found by -o and -e.
	in.start(2, "-o", fe.Org, "-e", fe.Env, "-k", key[1], "-s", secret[1])
	a := call(t, "GET", in.url("/hello/x"), map[string]string{"x-api-key": fe.Apps()[0].Key}, "")
	if a.status != 200 {
		t.Fatalf("a request through the configured gateway: %d %s", a.status, a.body)
	}
}
