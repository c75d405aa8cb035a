package h1test

import (
	"bufio"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
)

// Clients sends GETs for path to addr on keep-alive connections, one per
// parallel goroutine (8 per GOMAXPROCS), reads each answer and fails b
// unless it is a 200 whose body starts with "hello".
func Clients(b *testing.B, addr, path string) {
	req := "GET " + path + " HTTP/1.1\r\nHost: " + addr + "\r\nUser-Agent: bench\r\n\r\n"
	b.ReportAllocs()
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer c.Close()
		br := bufio.NewReader(c)
		for pb.Next() {
			if _, err := io.WriteString(c, req); err != nil {
				b.Error(err)
				return
			}
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				b.Error(err)
				return
			}
			body, _ := io.ReadAll(resp.Body)
			_ = resp.Body.Close()
			if resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(body), "hello") {
				b.Errorf("answer %d %q", resp.StatusCode, body)
				return
			}
		}
	})
	b.StopTimer()
}
