package edge

import (
	"fmt"
	"testing"

	"github.com/rs/zerolog"
)

// TestMergeKeepsOnlyTheNamedProxies: edgemicro.proxies keeps only the
// Edge proxies it names, after proxyPattern.
func TestMergeKeepsOnlyTheNamedProxies(t *testing.T) {
	t.Parallel()
	boot := `{"apiProxies":[
 {"apiProxyName":"edgemicro_a","proxyEndpoint":{"basePath":"/a"},"targetEndpoint":{"url":"http://t"}},
 {"apiProxyName":"edgemicro_b","proxyEndpoint":{"basePath":"/b"},"targetEndpoint":{"url":"http://t"}},
 {"apiProxyName":"other_c","proxyEndpoint":{"basePath":"/c"},"targetEndpoint":{"url":"http://t"}}
]}`
	snap := edgeSnap(t)
	snap.Config.Edgemicro.Proxies = []string{"edgemicro_b", "other_c"}
	if err := Merge(snap, download(boot, `{"apiProduct":[]}`), zerolog.Nop()); err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(snap.Config.Proxies); got != "[{edgemicro_b /b http://t 0 0 }]" {
		t.Fatalf("proxies = %s, want edgemicro_b alone", got)
	}
}
