package replicatest

import (
	"crypto/tls"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ocsp"
	"software.sslmate.com/src/go-pkcs12"
)

// TestRevokeByCLIUnderLoad: the per-request reads are shared by concurrent
// requests and, on SQLite, kept while nothing commits (portal/batch.go,
// sqlite/lookupcache.go). With whoami and OCSP requests running on
// kept-alive connections to every replica (one on SQLite, two on
// PostgreSQL), a revocation committed by a separate `certportal cert
// revoke` process is refused at the very next request: every request sent
// after the command returned gets 403 "revoked", on each replica, on the
// connections that were answered "good" just before, and OCSP says revoked.
func TestRevokeByCLIUnderLoad(t *testing.T) {
	eachDB(t, func(t *testing.T, db string) {
		data, n := initReplicated(t, db)
		run(t, "", "user", "add", "--data", data, "--id", "carol", "--email", "carol@example.com")
		p12path := filepath.Join(t.TempDir(), "carol.p12")
		const p12pw = "carol's p12 password"
		run(t, p12pw+"\n", "cert", "issue", "--data", data, "--id", "carol", "--out", p12path, "--password-file", "-")
		b, err := os.ReadFile(p12path)
		if err != nil {
			t.Fatal(err)
		}
		key, leaf, _, err := pkcs12.DecodeChain(b, p12pw)
		if err != nil {
			t.Fatal(err)
		}
		serial := strings.ToUpper(leaf.SerialNumber.Text(16))
		if len(serial)%2 == 1 {
			serial = "0" + serial
		}
		issuing := readCert(t, filepath.Join(data, "ca", "issuing.crt"))
		var replicas []*replica
		for i := range n {
			replicas = append(replicas, startReplica(t, string(rune('A'+i)), data))
		}
		// Kept-alive clients: each worker reuses its connection.
		keep := client(t, data, &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf})
		keep.Transport.(*http.Transport).DisableKeepAlives = false
		keep.Transport.(*http.Transport).MaxIdleConnsPerHost = 16

		// revokedAt is set (UnixNano) once the CLI has returned; a
		// request sent after it must be refused.
		var revokedAt atomic.Int64
		var good, refused, late atomic.Int64
		stop := make(chan struct{})
		var wg sync.WaitGroup
		for w := range 8 {
			r := replicas[w%n]
			wg.Go(func() {
				for {
					select {
					case <-stop:
						return
					default:
					}
					sent := time.Now().UnixNano()
					code, m := whoamiKept(t, keep, r)
					switch {
					case code == http.StatusOK && m["id"] == "carol":
						good.Add(1)
						if at := revokedAt.Load(); at != 0 && sent > at {
							late.Add(1)
							t.Errorf("whoami on %s sent %v after the revocation returned: 200 %v", r.name, time.Duration(sent-at), m)
						}
					case code == http.StatusForbidden && m["error"] == "revoked":
						refused.Add(1)
					default:
						t.Errorf("whoami on %s: %d %v", r.name, code, m)
						return
					}
				}
			})
		}
		// Let the load run: shared reads, warm caches, "good" answers.
		time.Sleep(time.Second)
		for _, r := range replicas {
			if st := ocspStatus(t, r, leaf, issuing); st != ocsp.Good {
				t.Fatalf("OCSP on %s before the revocation: %s", r.name, ocspNames[st])
			}
		}
		if good.Load() == 0 {
			t.Fatal("no whoami answered good before the revocation")
		}
		run(t, "", "cert", "revoke", "--data", data, "--serial", serial, "--reason", "keyCompromise")
		revokedAt.Store(time.Now().UnixNano())
		// The very next request on each replica, from this goroutine.
		for _, r := range replicas {
			if code, m := whoamiKept(t, keep, r); code != http.StatusForbidden || m["error"] != "revoked" {
				t.Errorf("whoami on %s right after the revocation: %d %v, want 403 revoked", r.name, code, m)
			}
			if st := ocspStatus(t, r, leaf, issuing); st != ocsp.Revoked {
				t.Errorf("OCSP on %s right after the revocation: %s, want revoked", r.name, ocspNames[st])
			}
		}
		time.Sleep(500 * time.Millisecond)
		close(stop)
		wg.Wait()
		if refused.Load() == 0 || late.Load() != 0 {
			t.Errorf("%d answered good (%d of them sent after the revocation), %d refused", good.Load(), late.Load(), refused.Load())
		}
		t.Logf("%s: %d requests answered good before the revocation, %d refused after", db, good.Load(), refused.Load())
	})
}

// whoamiKept is whoami on a client that may keep its connection; it reads
// the body to the end so the connection goes back to the pool.
func whoamiKept(t *testing.T, c *http.Client, r *replica) (int, map[string]string) {
	resp, err := c.Get(r.base + "/api/whoami")
	if err != nil {
		t.Errorf("GET /api/whoami on %s: %v", r.name, err)
		return 0, nil
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	var m map[string]string
	if err := json.Unmarshal(body, &m); err != nil {
		t.Errorf("GET /api/whoami on %s: %s, not JSON: %q", r.name, resp.Status, body)
	}
	return resp.StatusCode, m
}
