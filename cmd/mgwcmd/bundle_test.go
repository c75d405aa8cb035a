package mgwcmd

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func zipOf(t *testing.T, files map[string]string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for name, body := range files {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.Write([]byte(body))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipNames(t *testing.T, b []byte) string {
	t.Helper()
	r, err := zip.NewReader(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, f := range r.File {
		names = append(names, f.Name)
	}
	sort.Strings(names)
	return strings.Join(names, " ")
}

// TestReadBundle: a directory that is or holds apiproxy/ is zipped with
// its files under apiproxy/; a zip is taken as it is; anything that is
// not a proxy bundle is refused with what to pass instead.
func TestReadBundle(t *testing.T) {
	t.Parallel()
	good := map[string]string{
		"apiproxy/edgemicro-auth.xml":  "<APIProxy/>",
		"apiproxy/proxies/default.xml": "<ProxyEndpoint/>",
		"apiproxy/policies/a.xml":      "<A/>",
	}
	const want = "apiproxy/edgemicro-auth.xml apiproxy/policies/a.xml apiproxy/proxies/default.xml"
	base := t.TempDir()
	writeFiles(t, filepath.Join(base, "package"), good)
	writeFiles(t, filepath.Join(base, "noproxy"), map[string]string{"apiproxy/edgemicro-auth.xml": "<APIProxy/>"})
	writeFiles(t, filepath.Join(base, "other"), map[string]string{"README.md": "x"})
	zipFile := filepath.Join(base, "b.zip")
	_ = os.WriteFile(zipFile, zipOf(t, good), 0o644)
	nested := filepath.Join(base, "nested.zip")
	_ = os.WriteFile(nested, zipOf(t, map[string]string{"package/apiproxy/edgemicro-auth.xml": "x", "package/apiproxy/proxies/default.xml": "y"}), 0o644)
	sneaky := filepath.Join(base, "sneaky.zip")
	_ = os.WriteFile(sneaky, zipOf(t, map[string]string{"apiproxy/a.xml": "x", "apiproxy/proxies/d.xml": "y", "apiproxy/../../etc/x": "z"}), 0o644)

	for _, tc := range []struct {
		arg, want, err string
	}{
		{arg: filepath.Join(base, "package"), want: want},
		{arg: filepath.Join(base, "package", "apiproxy"), want: want},
		{arg: filepath.Join(base, "package", "apiproxy") + "/", want: want},
		{arg: zipFile, want: want},
		{arg: filepath.Join(base, "noproxy"), err: "needs apiproxy/NAME.xml and apiproxy/proxies/*.xml"},
		{arg: filepath.Join(base, "other"), err: "neither an apiproxy directory nor holds one"},
		{arg: filepath.Join(base, "other", "README.md"), err: "not a zip file"},
		{arg: nested, err: "needs apiproxy/NAME.xml"},
		{arg: sneaky, err: "which no proxy bundle has"},
		{arg: filepath.Join(base, "nosuch"), err: "no such file or directory"},
	} {
		b, err := readBundle(tc.arg)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want one saying %q", tc.arg, err, tc.err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", tc.arg, err)
			continue
		}
		if got := zipNames(t, b); got != tc.want {
			t.Errorf("%s: zip holds %s, want %s", tc.arg, got, tc.want)
		}
	}
}

// FuzzCheckZip: whatever a --bundle file holds, checking it, and setting
// the virtual hosts of one that passes, returns and never panics.
func FuzzCheckZip(f *testing.F) {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	for _, n := range []string{"apiproxy/x.xml", "apiproxy/proxies/default.xml"} {
		fw, _ := w.Create(n)
		_, _ = fw.Write([]byte("<x/>"))
	}
	_ = w.Close()
	f.Add(buf.Bytes())
	f.Add([]byte("PK\x03\x04"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		if checkZip(b) == nil {
			_, _ = setVirtualHosts(b, []string{"a", "b"})
		}
	})
}

// TestDeploymentError: the reason of a failed deployment comes from
// Edge's message, its errors or its message processors' errors, and an
// answer of any other shape still gives a line.
func TestDeploymentError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		answer, want string
	}{
		{`{"state":"error","message":"base path conflict"}`, "base path conflict"},
		{`{"state":"error","errors":["one","two"]}`, "one; two"},
		{`{"state":"error","server":[{"status":"error","error":"timed out"},{"status":"error","error":"timed out"},{"status":"deployed"}]}`, "timed out"},
		{`{"state":"error","errors":[{"code":1}],"server":"x","message":7}`, "no reason given"},
		{`{"state":"error"}`, "no reason given"},
	} {
		var m map[string]any
		if err := json.Unmarshal([]byte(tc.answer), &m); err != nil {
			t.Fatal(err)
		}
		if got := deploymentError(m); got != tc.want {
			t.Errorf("%s: %q, want %q", tc.answer, got, tc.want)
		}
	}
}

// TestSetVirtualHosts: the VirtualHost elements of each proxy endpoint
// are replaced by the hosts given, one per line where the first was;
// other files are kept as they are.
func TestSetVirtualHosts(t *testing.T) {
	t.Parallel()
	endpoint := "<ProxyEndpoint>\n    <HTTPProxyConnection>\n        <BasePath>/edgemicro-auth</BasePath>\n" +
		"        <VirtualHost>default</VirtualHost>\n        <VirtualHost>secure</VirtualHost>\n    </HTTPProxyConnection>\n</ProxyEndpoint>\n"
	z := zipOf(t, map[string]string{
		"apiproxy/edgemicro-auth.xml":  "<APIProxy><VirtualHost>kept</VirtualHost></APIProxy>",
		"apiproxy/proxies/default.xml": endpoint,
		"apiproxy/proxies/inline.xml":  "<P><VirtualHost>a</VirtualHost><VirtualHost>b</VirtualHost></P>",
	})
	for _, tc := range []struct {
		hosts          []string
		endpoint, line string
	}{
		{[]string{"internal"}, strings.Replace(endpoint, "        <VirtualHost>default</VirtualHost>\n        <VirtualHost>secure</VirtualHost>\n", "        <VirtualHost>internal</VirtualHost>\n", 1),
			"<P><VirtualHost>internal</VirtualHost></P>"},
		{[]string{"one", "two"}, strings.Replace(endpoint, "<VirtualHost>default</VirtualHost>\n        <VirtualHost>secure</VirtualHost>", "<VirtualHost>one</VirtualHost>\n        <VirtualHost>two</VirtualHost>", 1),
			"<P><VirtualHost>one</VirtualHost><VirtualHost>two</VirtualHost></P>"},
	} {
		out, err := setVirtualHosts(z, tc.hosts)
		if err != nil {
			t.Fatal(err)
		}
		files := map[string]string{}
		r, _ := zip.NewReader(bytes.NewReader(out), int64(len(out)))
		for _, f := range r.File {
			rc, _ := f.Open()
			var b bytes.Buffer
			_, _ = b.ReadFrom(rc)
			rc.Close()
			files[f.Name] = b.String()
		}
		if files["apiproxy/proxies/default.xml"] != tc.endpoint || files["apiproxy/proxies/inline.xml"] != tc.line ||
			files["apiproxy/edgemicro-auth.xml"] != "<APIProxy><VirtualHost>kept</VirtualHost></APIProxy>" {
			t.Fatalf("%v: got %q", tc.hosts, files)
		}
	}
	if _, err := setVirtualHosts(zipOf(t, map[string]string{"apiproxy/a.xml": "x", "apiproxy/proxies/d.xml": "<P/>"}), []string{"v"}); err == nil {
		t.Fatal("a bundle without VirtualHost elements was accepted")
	}
}
