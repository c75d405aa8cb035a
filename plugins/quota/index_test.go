package quota

import (
	"fmt"
	"testing"

	"github.com/mgw-gateway/mgw/configs"
	"github.com/mgw-gateway/mgw/plugins"
)

// TestIndexKeepsEachProxysQuotas checks what the index of a revision
// gives each proxy: the quotas of the products that list it (once, even
// when listed twice), a later product of the same name winning, and the
// error of a wrong product only for the proxies it lists.
func TestIndexKeepsEachProxysQuotas(t *testing.T) {
	t.Parallel()
	products := []configs.Product{
		{Name: "a", Proxies: []string{"p1", "p2", "p1"}, Quota: 5, QuotaInterval: 1, QuotaTimeUnit: "minute"},
		{Name: "none", Proxies: []string{"p1"}},
		{Name: "bad", Proxies: []string{"p3"}, Quota: 1, QuotaTimeUnit: "fortnight"},
		{Name: "a", Proxies: []string{"p2"}, Quota: 7, QuotaInterval: 1, QuotaTimeUnit: "hour"},
	}
	x := newIndex(products)
	tests := []struct {
		desc, proxy string
		want        map[string]uint32
		wantErr     bool
	}{
		{"listed twice counts once", "p1", map[string]uint32{"a": 5}, false},
		{"the later product of a name wins", "p2", map[string]uint32{"a": 7}, false},
		{"a wrong product fails its proxies", "p3", nil, true},
		{"unlisted", "p4", map[string]uint32{}, false},
	}
	for _, tc := range tests {
		t.Run(tc.desc, func(t *testing.T) {
			t.Parallel()
			got := map[string]uint32{}
			for _, q := range x.byProxy[tc.proxy] {
				if q.err != nil {
					if !tc.wantErr {
						t.Fatalf("error %v", q.err)
					}
					return
				}
				got[q.limit.product] = q.limit.allow
			}
			if tc.wantErr {
				t.Fatal("no error for a wrong quotaTimeUnit")
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Fatalf("quotas %v, want %v", got, tc.want)
			}
		})
	}
}

// BenchmarkQuotaStart builds the quota plugin of every proxy of an org of
// n proxies × n products, each product listing two proxies.
func BenchmarkQuotaStart(b *testing.B) {
	for _, n := range []int{100, 1000} {
		snap := &configs.Snapshot{Org: "org", Env: "env"}
		for i := range n {
			snap.Config.Proxies = append(snap.Config.Proxies, configs.Proxy{Name: fmt.Sprintf("proxy-%d", i), BasePath: fmt.Sprintf("/p%d", i)})
		}
		for j := range n {
			snap.Config.Products = append(snap.Config.Products, configs.Product{Name: fmt.Sprintf("product-%d", j),
				Proxies: []string{fmt.Sprintf("proxy-%d", j), fmt.Sprintf("proxy-%d", (j+1)%n)},
				Quota:   100, QuotaInterval: 1, QuotaTimeUnit: "minute"})
		}
		b.Run(fmt.Sprintf("%dx%d", n, n), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				env := plugins.Env{Shared: plugins.NewShared()}
				for i := range snap.Config.Proxies {
					if _, err := New(env, snap, &snap.Config.Proxies[i]); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
