package web_test

import (
	"bytes"
	"crypto/tls"
	"encoding/pem"
	"io"
	"strings"
	"testing"

	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/testpki"
	"github.com/certportal/certportal/portal"
	"github.com/certportal/certportal/web"
)

// TestCARoutesAfterRollover: every issuing CA is served by name, the
// issuing.* aliases are the current one, chain.pem and the about page list
// them all.
func TestCARoutesAfterRollover(t *testing.T) {
	p := testpki.New(t)
	if _, err := p.Rollover(ca.RolloverOptions{}); err != nil {
		t.Fatal(err)
	}
	a, err := ca.Load(p.Dir, "")
	if err != nil {
		t.Fatal(err)
	}
	a.Now = p.Clock.Now
	q := &testpki.PKI{Authority: a, Dir: p.Dir, Clock: p.Clock}
	cert, err := a.ServerCertificate()
	if err != nil {
		t.Fatal(err)
	}
	base := serveTLS(t, q, staticSource{cert})
	c := newProbe(t, q).c
	fetch := func(path string) (int, []byte) {
		resp, err := c.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, b
	}
	ica1, ica2 := a.Issuers[0], a.Issuers[1]
	for _, tt := range []struct {
		path string
		want []byte
	}{
		{"/ca/SOP-ICA1.crt", ica1.Raw}, {"/ca/SOP-ICA2.crt", ica2.Raw}, {"/ca/issuing.crt", ica2.Raw},
		{"/ca/SOP-RCA.crt", a.Root.Raw}, {"/ca/root.crt", a.Root.Raw},
	} {
		if code, b := fetch(tt.path); code != 200 || !bytes.Equal(b, tt.want) {
			t.Errorf("GET %s: %d, %d bytes", tt.path, code, len(b))
		}
	}
	for _, path := range []string{"/ca/SOP-ICA3.crt", "/ca/SOP-TLS1.crt", "/ca/SOP-ICA1.pem", "/crl/SOP-ICA9.crl"} {
		if code, _ := fetch(path); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	_, chain := fetch("/ca/chain.pem")
	var got [][]byte
	for blk, rest := pem.Decode(chain); blk != nil; blk, rest = pem.Decode(rest) {
		got = append(got, blk.Bytes)
	}
	if len(got) != 3 || !bytes.Equal(got[0], ica2.Raw) || !bytes.Equal(got[1], ica1.Raw) || !bytes.Equal(got[2], a.Root.Raw) {
		t.Errorf("chain.pem holds %d certificates, want SOP-ICA2, SOP-ICA1, root", len(got))
	}
	_, about := fetch("/about/certificate")
	for _, want := range []string{"SOP-ICA2", "(current)", "SOP-ICA1", "(earlier)", `href="/ca/SOP-ICA1.crt"`} {
		if !strings.Contains(string(about), want) {
			t.Errorf("the about page lacks %q", want)
		}
	}
	// The handshake asks for certificates of either issuing CA (or the root).
	cfg := web.New(portal.New(nil, a, nil, portal.Config{}, nil), nil).TLSConfigFrom(staticSource{cert})
	//lint:ignore SA1019 Subjects is fine for a pool built from certificates.
	if n := len(cfg.ClientCAs.Subjects()); n != 3 { //nolint:staticcheck
		t.Errorf("ClientCAs names %d CAs, want both issuing CAs and the root", n)
	}
}

type staticSource struct{ c *tls.Certificate }

func (s staticSource) Certificate() *tls.Certificate { return s.c }
