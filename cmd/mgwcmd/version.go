package mgwcmd

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// version is set at link time by `make build`
// (-ldflags "-X github.com/mgw-gateway/mgw/cmd/mgwcmd.version=…");
// otherwise the module version from the build info is used.
var version = ""

// versionString is what `mgw --version` prints: the version, the commit
// it was built from (marked when the tree had changes), the Go version
// and the platform.
func versionString() string {
	v, rev, modified, when := version, "unknown", false, ""
	if bi, ok := debug.ReadBuildInfo(); ok {
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
				if len(rev) > 12 {
					rev = rev[:12]
				}
			case "vcs.modified":
				modified = s.Value == "true"
			case "vcs.time":
				when = s.Value
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if modified {
		rev += "+changes"
	}
	out := fmt.Sprintf("mgw %s (commit %s", v, rev)
	if when != "" {
		out += ", " + when
	}
	return out + fmt.Sprintf(", %s, %s/%s)", runtime.Version(), runtime.GOOS, runtime.GOARCH)
}
