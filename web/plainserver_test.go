package web_test

import (
	"bytes"
	"context"
	"encoding/asn1"
	"encoding/base64"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httptrace"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/web"
)

// TestPlainServerAnswersAsCAHandler: the plain-HTTP listener as serve runs
// it (PlainServer: fasthttp, the OCSP routes answered directly) gives
// every request the same status, headers and body as CAHandler under
// net/http, the implementation of every other route: OCSP POST and GET in
// their forms (good, escaped, malformed, empty, with a nonce, 304, HEAD),
// wrong methods, a cross-site POST, the CA certificates, CRLs and pages.
// Date, Connection and Keep-Alive are the servers' own; a HEAD's
// Content-Length is compared apart (fasthttp sends the length GET would).
func TestPlainServerAnswersAsCAHandler(t *testing.T) {
	e := newEnv(t)
	e.web.HSTS = true
	ref := httptest.NewServer(e.web.CAHandler())
	defer ref.Close()
	e.addUser("otto", "otto@example.com", "otto password")
	leaf, _, _ := issueDirect(t, e, "otto")
	der, err := ocsp.CreateRequest(leaf, e.pki.Issuing, nil)
	if err != nil {
		t.Fatal(err)
	}
	withNonce := ocspRequestWithNonce(t, der)
	b64 := base64.StdEncoding.EncodeToString(der)
	escaped := url.PathEscape(b64)
	etag := ""
	{
		resp, err := http.Get(ref.URL + "/ocsp/" + b64)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if etag = resp.Header.Get("ETag"); etag == "" {
			t.Fatal("no ETag on GET /ocsp/...")
		}
	}
	type req struct {
		method, path string
		body         []byte
		header       map[string]string
		fresh        bool // signed anew per request (a nonce): the bodies differ
	}
	reqs := []req{
		{"POST", "/ocsp", der, map[string]string{"Content-Type": "application/ocsp-request"}, false},
		{"POST", "/ocsp/", der, nil, false},
		{"POST", "/ocsp?x=1", der, nil, false},
		{"POST", "/ocsp", withNonce, nil, true},
		{"POST", "/ocsp", []byte("not an OCSP request"), nil, false},
		{"POST", "/ocsp", nil, nil, false},
		{"POST", "/ocsp", bytes.Repeat([]byte{0x30}, web.DefaultMaxBody+1), nil, false},
		{"POST", "/ocsp", der, map[string]string{"Origin": "https://elsewhere.example"}, false},
		{"POST", "/ocsp", der, map[string]string{"Sec-Fetch-Site": "cross-site"}, false},
		{"GET", "/ocsp/" + b64, nil, nil, false},
		{"GET", "/ocsp/" + escaped, nil, nil, false},
		{"GET", "/ocsp/" + strings.TrimRight(base64.URLEncoding.EncodeToString(der), "="), nil, nil, false},
		{"GET", "/ocsp/" + base64.StdEncoding.EncodeToString(withNonce), nil, nil, true},
		{"GET", "/ocsp/" + b64, nil, map[string]string{"If-None-Match": etag}, false},
		{"GET", "/ocsp/" + b64, nil, map[string]string{"If-None-Match": `"other"`}, false},
		{"HEAD", "/ocsp/" + b64, nil, nil, false},
		{"HEAD", "/ocsp/" + base64.StdEncoding.EncodeToString(withNonce), nil, nil, true},
		{"GET", "/ocsp/!!!", nil, nil, false},
		{"GET", "/ocsp/A%2FB", nil, nil, false},
		{"GET", "/ocsp", nil, nil, false},
		{"GET", "/ocspx", nil, nil, false},
		{"PUT", "/ocsp/" + b64, der, nil, false},
		{"DELETE", "/ocsp", nil, nil, false},
		{"GET", "/ca/root.crt", nil, nil, false},
		{"GET", "/ca/issuing.crt", nil, nil, false},
		{"GET", "/ca/chain.pem", nil, nil, false},
		{"HEAD", "/ca/root.crt", nil, nil, false},
		{"GET", "/crl/issuing.crl", nil, nil, false},
		{"GET", "/crl/root.crl", nil, nil, false},
		{"GET", "/crl/nothing.crl", nil, nil, false},
		{"GET", "/", nil, nil, false},
		{"GET", "/login", nil, nil, false},
		{"POST", "/login", []byte("id=otto"), map[string]string{"Content-Type": "application/x-www-form-urlencoded"}, false},
		{"GET", "/no/such/page", nil, nil, false},
	}
	for i := range reqs {
		if reqs[i].body != nil && reqs[i].header == nil {
			reqs[i].header = map[string]string{"Content-Type": "application/ocsp-request"}
		}
	}
	send := func(base string, r req) (*http.Response, []byte) {
		t.Helper()
		hr, err := http.NewRequest(r.method, base+r.path, bytes.NewReader(r.body))
		if err != nil {
			t.Fatal(err)
		}
		if r.body == nil {
			hr.Body = nil
		}
		for k, v := range r.header {
			hr.Header.Set(k, v)
		}
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Do(hr)
		if err != nil {
			t.Fatalf("%s %s: %v", r.method, r.path, err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}
	// The CRLs are signed on first download: fetch them once from each so
	// both answer from the stored CRL.
	for _, base := range []string{ref.URL, e.caSrv.URL} {
		send(base, req{method: "GET", path: "/crl/issuing.crl"})
		send(base, req{method: "GET", path: "/crl/root.crl"})
	}
	own := []string{"Date", "Connection", "Keep-Alive"}
	for _, r := range reqs {
		name := r.method + " " + r.path
		if len(name) > 60 {
			name = name[:60] + "…"
		}
		want, wantBody := send(ref.URL, r)
		got, gotBody := send(e.caSrv.URL, r)
		if got.StatusCode != want.StatusCode {
			t.Errorf("%s: status %d, net/http %d", name, got.StatusCode, want.StatusCode)
		}
		if r.fresh {
			for _, b := range [][]byte{gotBody, wantBody} {
				if _, err := ocsp.ParseResponse(b, nil); err != nil && r.method != "HEAD" {
					t.Errorf("%s: %v", name, err)
				}
			}
		} else if !bytes.Equal(gotBody, wantBody) {
			t.Errorf("%s: a body of %d bytes, net/http %d:\n%.300q\n%.300q", name, len(gotBody), len(wantBody), gotBody, wantBody)
		}
		keys := map[string]bool{}
		for k := range got.Header {
			keys[k] = true
		}
		for k := range want.Header {
			keys[k] = true
		}
		for k := range keys {
			if slices.Contains(own, k) || ((r.method == "HEAD" || r.fresh) && k == "Content-Length") {
				continue
			}
			if g, w := got.Header.Values(k), want.Header.Values(k); !slices.Equal(g, w) {
				t.Errorf("%s: %s %q, net/http %q", name, k, g, w)
			}
		}
		if r.method == "HEAD" && len(gotBody) != 0 {
			t.Errorf("%s: a body of %d bytes", name, len(gotBody))
		}
	}
}

// ocspRequestWithNonce is der with a nonce extension added (RFC 8954):
// such an answer is the requester's alone and never cacheable.
func ocspRequestWithNonce(t *testing.T, der []byte) []byte {
	t.Helper()
	type extension struct {
		ID    asn1.ObjectIdentifier
		Value []byte
	}
	type request struct {
		TBS struct {
			RequestList asn1.RawValue
			Extensions  []extension `asn1:"explicit,tag:2,optional"`
		}
	}
	var r request
	if _, err := asn1.Unmarshal(der, &r); err != nil {
		t.Fatal(err)
	}
	nonce, _ := asn1.Marshal([]byte("0123456789abcdef"))
	r.TBS.Extensions = []extension{{asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 48, 1, 2}, nonce}}
	out, err := asn1.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// TestPlainServerLimits: the plain-HTTP listener's limits at their
// boundaries, over a socket. A body of MaxBody bytes is read (and answered
// malformedRequest), one byte more gets 413, and so does one 250 KiB
// longer, read to its end so that its connection serves the next request; headers that fit in 16 KiB
// are read, longer ones get 431; a request whose headers do not arrive
// within the read timeout is cut off, while a slow kept-alive connection
// does not hold up another.
func TestPlainServerLimits(t *testing.T) {
	e := newEnv(t)
	post := func(n int) int {
		t.Helper()
		resp, err := http.Post(e.caSrv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(bytes.Repeat([]byte{0x30}, n)))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusRequestEntityTooLarge && string(body) != "the OCSP request is too large\n" {
			t.Errorf("413 body %q", body)
		}
		return resp.StatusCode
	}
	if got := post(web.DefaultMaxBody); got != http.StatusOK {
		t.Errorf("a body of MaxBody bytes: %d, want 200 (malformedRequest)", got)
	}
	if got := post(web.DefaultMaxBody + 1); got != http.StatusRequestEntityTooLarge {
		t.Errorf("a body of MaxBody+1 bytes: %d, want 413", got)
	}
	// Read to its end, so the client gets its 413 and not a reset, and
	// its connection serves the next request.
	var reused []bool
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = append(reused, i.Reused) }}
	one := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	for _, n := range []int{web.DefaultMaxBody + 250<<10, 10} {
		req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace),
			http.MethodPost, e.caSrv.URL+"/ocsp", bytes.NewReader(bytes.Repeat([]byte{0x30}, n)))
		resp, err := one.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if want := map[bool]int{true: http.StatusRequestEntityTooLarge, false: http.StatusOK}[n > 100]; resp.StatusCode != want {
			t.Errorf("a body of %d bytes: %d, want %d", n, resp.StatusCode, want)
		}
	}
	if !slices.Equal(reused, []bool{false, true}) {
		t.Errorf("connections reused %v, want [false true]: the 413 closed the connection", reused)
	}
	header := func(n int) int {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, e.caSrv.URL+"/ca/root.crt", nil)
		req.Header.Set("X-Padding", strings.Repeat("a", n))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if got := header(15 << 10); got != http.StatusOK {
		t.Errorf("15 KiB of headers: %d, want 200", got)
	}
	if got := header(16 << 10); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("16 KiB of headers: %d, want 431", got)
	}
	// A client that sends half a request line and stops.
	c, err := net.Dial("tcp", strings.TrimPrefix(e.caSrv.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("GET /ca/root.crt HT")); err != nil {
		t.Fatal(err)
	}
	// Meanwhile another client is served at once.
	start := time.Now()
	if got := header(10); got != http.StatusOK || time.Since(start) > 2*time.Second {
		t.Errorf("beside a stalled client: %d after %v", got, time.Since(start))
	}
	_ = c.SetReadDeadline(time.Now().Add(20 * time.Second))
	b, err := io.ReadAll(c)
	if err != nil {
		t.Fatalf("the stalled connection: %v after %v", err, time.Since(start))
	}
	if el := time.Since(start); el < 9*time.Second || el > 15*time.Second {
		t.Errorf("the stalled connection was closed after %v, want about 10 s", el)
	}
	if len(b) > 0 && !strings.HasPrefix(string(b), "HTTP/1.1 408") {
		t.Errorf("the stalled connection got %.80q", b)
	}
}

// TestPlainServerRevocationAtOnce: an OCSP POST to the plain-HTTP
// listener on a kept-alive connection says revoked at the first request
// after the revocation, as on the HTTPS listener.
func TestPlainServerRevocationAtOnce(t *testing.T) {
	e := newEnv(t)
	e.addUser("otto", "otto@example.com", "otto password")
	leaf, _, _ := issueDirect(t, e, "otto")
	der, err := ocsp.CreateRequest(leaf, e.pki.Issuing, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Transport: &http.Transport{MaxConnsPerHost: 1}}
	status := func() int {
		t.Helper()
		resp, err := client.Post(e.caSrv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		// issuer nil: x/crypto/ocsp then checks the signature against the
		// certificate in the response, which must be the issuing CA's.
		r, err := ocsp.ParseResponseForCert(b, leaf, nil)
		if err != nil || !bytes.Equal(r.Certificate.Raw, e.pki.Issuing.Raw) {
			t.Fatalf("%d: %v, or not signed by the issuing CA", resp.StatusCode, err)
		}
		return r.Status
	}
	for i := range 3 {
		if s := status(); s != ocsp.Good {
			t.Fatalf("request %d: status %d, want good", i, s)
		}
	}
	if _, err := e.svc.Revoke(context.Background(), portal.Admin, certportal.FormatSerial(leaf.SerialNumber), certportal.ReasonKeyCompromise); err != nil {
		t.Fatal(err)
	}
	if s := status(); s != ocsp.Revoked {
		t.Fatalf("the first request after the revocation: status %d, want revoked", s)
	}
}

// TestPlainServerSurvivesAPanic: fasthttp does not recover a handler's
// panic, so the plain-HTTP listener does: an OCSP request whose answer
// panics (here the portal has lost its CA) gets 500 with the OCSP
// internalError response and a closed connection, and the listener, the
// process with it, goes on serving.
func TestPlainServerSurvivesAPanic(t *testing.T) {
	e := newEnv(t)
	e.addUser("otto", "otto@example.com", "otto password")
	leaf, _, _ := issueDirect(t, e, "otto")
	der, err := ocsp.CreateRequest(leaf, e.pki.Issuing, nil)
	if err != nil {
		t.Fatal(err)
	}
	authority := e.svc.CA
	e.svc.CA = nil
	for _, path := range []string{"/ocsp", "/ocsp/" + base64.StdEncoding.EncodeToString(der)} {
		var resp *http.Response
		if path == "/ocsp" {
			resp, err = http.Post(e.caSrv.URL+path, "application/ocsp-request", bytes.NewReader(der))
		} else {
			resp, err = http.Get(e.caSrv.URL + path)
		}
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusInternalServerError || !bytes.Equal(body, ocsp.InternalErrorErrorResponse) || !resp.Close {
			t.Errorf("%s: %d %x, closed %v; want 500, internalError, closed", path, resp.StatusCode, body, resp.Close)
		}
	}
	e.svc.CA = authority
	resp, err := http.Post(e.caSrv.URL+"/ocsp", "application/ocsp-request", bytes.NewReader(der))
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if r, err := ocsp.ParseResponse(body, nil); err != nil || r.Status != ocsp.Good {
		t.Fatalf("after the panics: %v", err)
	}
}
