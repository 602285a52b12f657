package web

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestReadBody: a body of its declared length is read whole; one shorter
// or longer than declared is an error; without a declared length, or past
// the route's bound, it reads as io.ReadAll does.
func TestReadBody(t *testing.T) {
	req := func(body string, declared int64) *http.Request {
		r, _ := http.NewRequest(http.MethodPost, "/ocsp", io.NopCloser(strings.NewReader(body)))
		r.ContentLength = declared
		return r
	}
	for _, tc := range []struct {
		body     string
		declared int64
		ok       bool
	}{
		{"0123456789", 10, true},
		{"0123456789", -1, true}, // unknown length: read to the end
		{"0123456789", 11, false},
		{"0123456789", 9, false},
		{"", 0, true},
	} {
		got, err := readBody(req(tc.body, tc.declared))
		if tc.ok != (err == nil) || tc.ok && !bytes.Equal(got, []byte(tc.body)) {
			t.Errorf("body %q declared %d: %q, %v", tc.body, tc.declared, got, err)
		}
	}
	// Past the route's bound the MaxBytesReader still says so.
	w := &headerCatcher{header: http.Header{}}
	r := req(strings.Repeat("x", 100), 100)
	r.Body = http.MaxBytesReader(w, r.Body, 50)
	if _, err := readBody(r); err == nil {
		t.Error("a body past the route's bound was read")
	}
}
