package web_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// TestCheckedPerRequestOnOneConnection: the chain is verified once per
// connection and once per certificate, but what can change is still
// checked at every request, on a kept-alive connection (the verdict kept
// with the connection) and on new connections (the verdict kept by the
// certificate's SHA-256): revocation, expiry and cancellation end the
// sign-in at the next request.
func TestCheckedPerRequestOnOneConnection(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, p *benchPortal)
		want   string
	}{
		{"revoked", func(t *testing.T, p *benchPortal) {
			if _, err := p.svc.Revoke(context.Background(), portal.Admin, p.cert.Leaf.SerialNumber.Text(16), certportal.ReasonKeyCompromise); err != nil {
				t.Fatal(err)
			}
		}, "revoked"},
		{"expired", func(t *testing.T, p *benchPortal) {
			p.pki.Clock.Set(p.cert.Leaf.NotAfter.Add(time.Second))
		}, "expired"},
		{"cancelled", func(t *testing.T, p *benchPortal) {
			if err := p.svc.CancelUser(context.Background(), portal.Admin, "bench"); err != nil {
				t.Fatal(err)
			}
		}, "cancelled"},
	}
	for _, keep := range []bool{true, false} {
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/keepalive=%v", tt.name, keep), func(t *testing.T) {
				checkAfterChange(t, keep, tt.change, tt.want)
			})
		}
	}
}

// checkAfterChange signs in three times, makes the change, and expects
// the next request to be refused with want.
func checkAfterChange(t *testing.T, keep bool, change func(*testing.T, *benchPortal), want string) {
	p := newBenchPortal(t)
	c := p.client(keep)
	defer c.CloseIdleConnections()
	for range 3 {
		p.whoami(t, c) // the first verifies the chain, the others reuse it
	}
	change(t, p)
	reused := false
	trace := &httptrace.ClientTrace{GotConn: func(i httptrace.GotConnInfo) { reused = i.Reused }}
	req, _ := http.NewRequestWithContext(httptrace.WithClientTrace(context.Background(), trace), http.MethodGet, p.srv.URL+"/api/whoami", nil)
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var got struct{ Error string }
	_ = json.Unmarshal(body, &got)
	if resp.StatusCode != http.StatusForbidden || got.Error != want {
		t.Errorf("after the change: %s %s, want 403 %q", resp.Status, body, want)
	}
	if reused != keep {
		t.Errorf("the last request reused a connection: %v, want %v", reused, keep)
	}
}
