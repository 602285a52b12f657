package web_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// TestOCSPGetIsCacheable: a GET without a nonce (RFC 5019) carries
// max-age (an hour: the cached response is re-signed with a quarter of
// its 24 hours left, so nextUpdate is always further), an ETag and
// Last-Modified, and answers 304 to If-None-Match; a revocation changes
// the ETag; POST and requests with a nonce stay no-cache.
func TestOCSPGetIsCacheable(t *testing.T) {
	e := newEnv(t)
	e.addUser("otto", "otto@example.com", "otto password")
	leaf, _, _ := issueDirect(t, e, "otto")
	der, err := ocsp.CreateRequest(leaf, e.pki.Issuing, nil)
	if err != nil {
		t.Fatal(err)
	}
	u := e.caSrv.URL + "/ocsp/" + base64.StdEncoding.EncodeToString(der)
	get := func(etag string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, u, nil)
		if etag != "" {
			req.Header.Set("If-None-Match", etag)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}
	r := get("")
	cc, etag := r.Header.Get("Cache-Control"), r.Header.Get("ETag")
	age, ok := strings.CutPrefix(cc, "max-age=")
	n, _ := strconv.Atoi(strings.SplitN(age, ",", 2)[0])
	if r.StatusCode != http.StatusOK || !ok || n != 3600 || !strings.Contains(cc, "public") || etag == "" || r.Header.Get("Last-Modified") == "" {
		t.Fatalf("GET: %d Cache-Control %q ETag %q Last-Modified %q, want max-age=3600, public, an ETag", r.StatusCode, cc, etag, r.Header.Get("Last-Modified"))
	}
	if r := get(etag); r.StatusCode != http.StatusNotModified {
		t.Errorf("GET with If-None-Match: %d, want 304", r.StatusCode)
	}
	if _, err := e.svc.Revoke(context.Background(), portal.Admin, certportal.FormatSerial(leaf.SerialNumber), certportal.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if r := get(etag); r.StatusCode != http.StatusOK || r.Header.Get("ETag") == etag {
		t.Errorf("after a revocation: %d with ETag %q (was %q), want 200 and a new ETag", r.StatusCode, r.Header.Get("ETag"), etag)
	}
	// POST is no-cache.
	resp, err := http.Post(e.caSrv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" || resp.Header.Get("ETag") != "" {
		t.Errorf("POST: Cache-Control %q ETag %q, want no-cache and none", cc, resp.Header.Get("ETag"))
	}
}
