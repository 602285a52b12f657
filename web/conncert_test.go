package web_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptrace"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// TestCheckedPerRequestOnOneConnection: the chain is verified once per
// connection, but what can change is still checked at every request on a
// kept-alive connection: revocation, expiry and cancellation end the
// sign-in at the next request, without a new connection.
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
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := newBenchPortal(t)
			c := p.client(true)
			defer c.CloseIdleConnections()
			for range 3 {
				p.whoami(t, c) // the first verifies the chain, the others reuse it
			}
			tt.change(t, p)
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
			if resp.StatusCode != http.StatusForbidden || got.Error != tt.want {
				t.Errorf("after the change: %s %s, want 403 %q", resp.Status, body, tt.want)
			}
			if !reused {
				t.Error("the last request came on a new connection; the test needs it on the kept one")
			}
		})
	}
}
