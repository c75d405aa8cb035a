package main

import (
	"bytes"
	"compress/gzip"
	"strings"
	"testing"
	"testing/iotest"
)

// TestCountRecords counts the records of uploads read whole, a byte at a
// time (every mark split across reads) and gzipped, with the counter's
// buffers reused between them.
func TestCountRecords(t *testing.T) {
	for _, n := range []int{0, 1, 2, 1000, 5000} {
		body := `{"records":[` + strings.Repeat(`{"recordType":"APIAnalytics","x":"`+strings.Repeat("y", 37)+`"},`, n) + `]}`
		var z bytes.Buffer
		zw := gzip.NewWriter(&z)
		if _, err := zw.Write([]byte(body)); err != nil || zw.Close() != nil {
			t.Fatal("gzip")
		}
		for range 3 {
			for name, c := range map[string]struct {
				body    []byte
				oneByte bool
				gzipped bool
			}{"whole": {[]byte(body), false, false}, "one byte at a time": {[]byte(body), true, false}, "gzip": {z.Bytes(), false, true}} {
				var rd = bytes.NewReader(c.body)
				got, err := 0, error(nil)
				if c.oneByte {
					got, err = countRecords(iotest.OneByteReader(rd), c.gzipped)
				} else {
					got, err = countRecords(rd, c.gzipped)
				}
				if got != n || err != nil {
					t.Fatalf("%d records, %s: counted %d, %v", n, name, got, err)
				}
			}
		}
	}
}
