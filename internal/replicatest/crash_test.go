package replicatest

import (
	"bytes"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"

	"github.com/certportal/certportal/internal/pgtest"
)

// TestKillServeMidStream sends SIGKILL to a `certportal serve` while
// clients are issuing and revoking through it and through the CLI, then
// restarts it on the same data and checks that nothing a client was told
// is lost (issue 6): the database opens, every certificate a client
// received is recorded, no account has two valid certificates, the CRL
// lists every revocation that was confirmed, and the audit chain holds.
// It runs on PostgreSQL (a replica) and on SQLite (the single node, whose
// file the CLI processes share with serve).
func TestKillServeMidStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		db   func(t *testing.T) []string // init's --db flag, if any
	}{
		{"postgres", func(t *testing.T) []string { return []string{"--db", pgtest.FreshDatabase(t)} }},
		{"sqlite", func(*testing.T) []string { return nil }},
	} {
		t.Run(tc.name, func(t *testing.T) { killMidStream(t, tc.db(t)) })
	}
}

// ledger is what the clients were told: every certificate they received
// and every revocation confirmed to them (303 from /recover/confirm, exit
// 0 from the CLI).
type ledger struct {
	mu       sync.Mutex
	received map[string]string   // serial → account
	held     map[string][]string // account → serials received, in order
	revoked  map[string]string   // serial → how the revocation was confirmed
}

func (l *ledger) receive(account, serial string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.received[serial] = account
	l.held[account] = append(l.held[account], serial)
}

// revokeAll records that every certificate account ever had is revoked.
func (l *ledger) revokeAll(account, how string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, s := range l.held[account] {
		if _, ok := l.revoked[s]; !ok {
			l.revoked[s] = how
		}
	}
}

func (l *ledger) revoke(serial, how string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.revoked[serial]; !ok {
		l.revoked[serial] = how
	}
}

// serialHex formats a serial as certportal shows it: even-length
// upper-case hex.
func serialHex(n *big.Int) string {
	s := strings.ToUpper(n.Text(16))
	if len(s)%2 == 1 {
		s = "0" + s
	}
	return s
}

func killMidStream(t *testing.T, dbFlag []string) {
	const workers = 4
	data := filepath.Join(t.TempDir(), "data")
	run(t, "", append([]string{"init", "--data", data}, dbFlag...)...)
	p12pw := filepath.Join(t.TempDir(), "p12pw")
	if err := os.WriteFile(p12pw, []byte("a long p12 password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for w := range workers {
		run(t, fmt.Sprintf("kill test password %d\n", w), "user", "add", "--data", data,
			"--id", fmt.Sprintf("kill%d", w), "--email", fmt.Sprintf("kill%d@example.com", w), "--password-file", "-")
	}
	srv := startReplica(t, "serve", data)
	st := &stream{t: t, data: data, srv: srv, p12pw: p12pw, c: client(t, data, nil),
		l: &ledger{received: map[string]string{}, held: map[string][]string{}, revoked: map[string]string{}}}

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st.work(fmt.Sprintf("kill%d", w), fmt.Sprintf("kill test password %d", w), w)
		}()
	}
	// Kill once the stream is well under way: at least 1.2 s in and a few
	// certificates out, so the kill lands among issuances and revocations.
	start := time.Now()
	for time.Since(start) < 1200*time.Millisecond || st.count() < 2*workers {
		if time.Since(start) > 20*time.Second {
			st.stop.Store(true)
			wg.Wait()
			t.Fatalf("the stream made %d certificates in 20s; too slow to kill it mid-stream", st.count())
		}
		time.Sleep(50 * time.Millisecond)
	}
	st.stop.Store(true)
	srv.kill(t)
	wg.Wait()
	if t.Failed() {
		return
	}
	l := st.l
	t.Logf("killed after %v: %d certificates received, %d revocations confirmed, %d requests cut off by the kill",
		time.Since(start).Round(time.Millisecond), len(l.received), len(l.revoked), st.cut.Load())

	// Restart on the same data: the database opens and answers.
	again := startReplica(t, "serve (restarted)", data)
	if code := get(t, st.c, again.base+"/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz after the restart: %d, want 200", code)
	}

	// Every certificate a client received is recorded; no account has two
	// valid ones; every confirmed revocation stands.
	var certs []struct{ Serial, User, Status string }
	if err := json.Unmarshal([]byte(run(t, "", "cert", "list", "--data", data, "--json")), &certs); err != nil {
		t.Fatal(err)
	}
	recorded := map[string]string{}
	valid := map[string][]string{}
	for _, c := range certs {
		recorded[c.Serial] = c.Status
		if c.Status == "valid" {
			valid[c.User] = append(valid[c.User], c.Serial)
		}
	}
	for s, acc := range l.received {
		if _, ok := recorded[s]; !ok {
			t.Errorf("certificate %s was handed to %s but is not recorded", s, acc)
		}
	}
	for acc, ss := range valid {
		if len(ss) > 1 {
			t.Errorf("%s has %d valid certificates: %v", acc, len(ss), ss)
		}
	}
	for s, how := range l.revoked {
		if recorded[s] != "revoked" {
			t.Errorf("certificate %s (revoked: %s) is %q in cert list, want revoked", s, how, recorded[s])
		}
	}

	// The CRL the restarted serve publishes, signed by the issuing CA,
	// lists every revocation that was confirmed to a client.
	issuing := readCert(t, filepath.Join(data, "ca", "issuing.crt"))
	resp, err := http.Get(again.plain + "/crl/issuing.crl")
	if err != nil {
		t.Fatal(err)
	}
	der, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /crl/issuing.crl: %s", resp.Status)
	}
	crl, err := x509.ParseRevocationList(der)
	if err != nil {
		t.Fatalf("/crl/issuing.crl: %v", err)
	}
	if err := crl.CheckSignatureFrom(issuing); err != nil {
		t.Fatalf("/crl/issuing.crl is not signed by the issuing CA: %v", err)
	}
	listed := map[string]bool{}
	for _, e := range crl.RevokedCertificateEntries {
		listed[serialHex(e.SerialNumber)] = true
	}
	for s, how := range l.revoked {
		if !listed[s] {
			t.Errorf("certificate %s was revoked (%s, confirmed) but the CRL (number %v) does not list it", s, how, crl.Number)
		}
	}

	if out := run(t, "", "audit", "--data", data, "--verify"); !strings.Contains(out, "intact") {
		t.Errorf("audit --verify: %s", out)
	}
}

// stream is the clients' side of TestKillServeMidStream.
type stream struct {
	t     *testing.T
	data  string
	srv   *replica
	p12pw string
	c     *http.Client
	l     *ledger
	stop  atomic.Bool  // set just before the kill: finish the step at hand
	cut   atomic.Int32 // requests that failed because of the kill
	mails sync.Mutex   // one outbox reader at a time
	seen  map[string]bool
}

func (st *stream) count() int {
	st.l.mu.Lock()
	defer st.l.mu.Unlock()
	return len(st.l.received)
}

// work runs one account through issue → revoke cycles until the stream
// stops, varying how the revocation is made: the portal's recovery, `user
// reset-password`, or `cert revoke` (then reset-password to sign in again),
// and sometimes `cert issue` on top of the portal's certificate (which
// supersedes it). An error before the kill fails the test; after it, it
// ends the worker.
func (st *stream) work(id, password string, w int) {
	recoveries := 0
	for i := 0; !st.stop.Load(); i++ {
		var err error
		password, err = st.cycle(id, password, w+i, &recoveries)
		if err != nil {
			if st.stop.Load() {
				st.cut.Add(1)
			} else {
				st.t.Errorf("%s, cycle %d: %v", id, i, err)
			}
			return
		}
	}
}

// cycle issues and revokes once; it returns the account's password for
// the next cycle (the temporary one mailed by recovery or reset).
func (st *stream) cycle(id, password string, i int, recoveries *int) (string, error) {
	serial, err := st.issueOnPortal(id, password)
	if err != nil {
		return "", err
	}
	if i%2 == 1 {
		if _, err := st.issueByCLI(id); err != nil {
			return "", err
		}
		// Exit 0: the portal's certificate was superseded.
		st.l.revoke(serial, "superseded by cert issue")
	}
	kind := i % 3
	if kind == 0 && *recoveries >= 3 { // the portal allows 3 a day
		kind = 1
	}
	switch kind {
	case 0:
		*recoveries++
		if err := st.recover(id, password); err != nil {
			return "", err
		}
		st.l.revokeAll(id, "recovery")
	case 2:
		st.l.mu.Lock()
		last := st.l.held[id][len(st.l.held[id])-1]
		st.l.mu.Unlock()
		if err := st.cli("cert", "revoke", "--data", st.data, "--serial", last, "--reason", "keyCompromise"); err != nil {
			return "", err
		}
		st.l.revoke(last, "cert revoke")
		fallthrough // signs in by certificate still: reset to sign in again
	case 1:
		if err := st.cli("user", "reset-password", "--data", st.data, "--id", id); err != nil {
			return "", err
		}
		st.l.revokeAll(id, "user reset-password")
	}
	return st.temporaryPassword(id)
}

// post sends a form to the portal, with a session cookie if given.
func (st *stream) post(path string, form url.Values, session *http.Cookie) (*http.Response, []byte, error) {
	req, _ := http.NewRequest("POST", st.srv.base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if session != nil {
		req.AddCookie(session)
	}
	resp, err := st.c.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp, body, err
}

// issueOnPortal signs in with the password and downloads a certificate.
func (st *stream) issueOnPortal(id, password string) (string, error) {
	resp, _, err := st.post("/login", url.Values{"id": {id}, "password": {password}}, nil)
	if err != nil {
		return "", fmt.Errorf("POST /login: %w", err)
	}
	var session *http.Cookie
	for _, ck := range resp.Cookies() {
		if strings.HasPrefix(ck.Name, "__Host-") && ck.Value != "" {
			session = ck
		}
	}
	if resp.StatusCode != http.StatusSeeOther || session == nil {
		return "", fmt.Errorf("POST /login: %s (session %v), want 303 and a session", resp.Status, session)
	}
	const pw = "a long p12 password"
	resp, p12, err := st.post("/certificate", url.Values{"p12_password": {pw}, "p12_password_confirm": {pw}}, session)
	if err != nil {
		return "", fmt.Errorf("POST /certificate: %w", err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-pkcs12" {
		return "", fmt.Errorf("POST /certificate: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	_, leaf, _, err := pkcs12.DecodeChain(p12, pw)
	if err != nil {
		return "", fmt.Errorf("the .p12 from POST /certificate: %v", err)
	}
	serial := serialHex(leaf.SerialNumber)
	st.l.receive(id, serial)
	return serial, nil
}

// issueByCLI issues as an administrator would, and records the serial of
// the certificate in the .p12 written.
func (st *stream) issueByCLI(id string) (string, error) {
	out := filepath.Join(st.data, "..", fmt.Sprintf("%s-%d.p12", id, time.Now().UnixNano()))
	if err := st.cli("cert", "issue", "--data", st.data, "--id", id, "--out", out, "--password-file", st.p12pw); err != nil {
		return "", err
	}
	b, err := os.ReadFile(out)
	if err != nil {
		return "", err
	}
	_, leaf, _, err := pkcs12.DecodeChain(b, "a long p12 password")
	if err != nil {
		return "", fmt.Errorf("the .p12 from cert issue: %v", err)
	}
	serial := serialHex(leaf.SerialNumber)
	st.l.receive(id, serial)
	return serial, nil
}

// recoveryTicket returns the ticket POST /recover hands the browser in a
// short-lived cookie, for the confirmation page's form.
func recoveryTicket(resp *http.Response) string {
	if resp == nil {
		return ""
	}
	for _, ck := range resp.Cookies() {
		if ck.Name == "__Host-certportal-recover" {
			ticket, _, _ := strings.Cut(ck.Value, ".") // ticket.ID
			return ticket
		}
	}
	return ""
}

// recover goes through "If your certificate has been revoked": ID and
// password, then the "OK", which must answer 303.
func (st *stream) recover(id, password string) error {
	resp, _, err := st.post("/recover", url.Values{"id": {id}, "password": {password}}, nil)
	if err != nil {
		return fmt.Errorf("POST /recover: %w", err)
	}
	ticket := recoveryTicket(resp)
	if resp.StatusCode != http.StatusSeeOther || ticket == "" {
		return fmt.Errorf("POST /recover: %s, want 303 and a ticket", resp.Status)
	}
	resp, _, err = st.post("/recover/confirm", url.Values{"ticket": {ticket}}, nil)
	if err != nil {
		return fmt.Errorf("POST /recover/confirm: %w", err)
	}
	if resp.StatusCode != http.StatusSeeOther {
		return fmt.Errorf("POST /recover/confirm: %s, want 303", resp.Status)
	}
	return nil
}

// cli runs certportal; exit 0 is the confirmation.
func (st *stream) cli(args ...string) error {
	cmd := exec.Command(binary, args...)
	var e bytes.Buffer
	cmd.Stderr = &e
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("certportal %s: %v: %s", strings.Join(args, " "), err, e.String())
	}
	return nil
}

var temporaryLine = regexp.MustCompile(`(?m)^Temporary password: (\S+)\r?$`)

// temporaryPassword reads the newest mail to id's address in the outbox
// that carries a temporary password and was not read before.
func (st *stream) temporaryPassword(id string) (string, error) {
	st.mails.Lock()
	defer st.mails.Unlock()
	if st.seen == nil {
		st.seen = map[string]bool{}
	}
	names, err := filepath.Glob(filepath.Join(st.data, "outbox", "*.eml"))
	if err != nil {
		return "", err
	}
	sort.Sort(sort.Reverse(sort.StringSlice(names)))
	for _, n := range names {
		if st.seen[n] {
			continue
		}
		b, err := os.ReadFile(n)
		if err != nil {
			return "", err
		}
		m := temporaryLine.FindSubmatch(b)
		if m == nil || !bytes.Contains(b, []byte(id+"@example.com")) {
			continue
		}
		st.seen[n] = true
		return string(m[1]), nil
	}
	return "", errors.New("no new mail with a temporary password in the outbox")
}
