package replicatest

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certportal/certportal/internal/pgtest"
)

// The attacks of the hostile review, replayed over real TLS against real
// `serve` processes: on SQLite (one process) and on PostgreSQL (two
// replicas behind one imaginary load balancer).

// attackPortal is a data dir with one user and its running replicas.
type attackPortal struct {
	data     string
	replicas []*replica
	h2       *http.Client // one HTTP/2 connection per replica, many streams
}

func (p *attackPortal) at(i int) *replica { return p.replicas[i%len(p.replicas)] }

// initReplicated runs `certportal init` on a new data directory for db
// ("sqlite" or "postgres", on a fresh database) and says how many
// replicas to run on it: one on SQLite, two on PostgreSQL.
func initReplicated(t *testing.T, db string) (data string, replicas int) {
	t.Helper()
	data = filepath.Join(t.TempDir(), "data")
	args := []string{"init", "--data", data}
	replicas = 1
	if db == "postgres" {
		args = append(args, "--db", pgtest.FreshDatabase(t))
		replicas = 2
	}
	run(t, "", args...)
	return data, replicas
}

func newAttackPortal(t *testing.T, db string, userID, password string) *attackPortal {
	t.Helper()
	data, n := initReplicated(t, db)
	run(t, password+"\n", "user", "add", "--data", data, "--id", userID, "--email", userID+"@example.com", "--password-file", "-")
	p := &attackPortal{data: data}
	for i := range n {
		p.replicas = append(p.replicas, startReplica(t, string(rune('A'+i)), data))
	}
	roots := x509.NewCertPool()
	roots.AddCert(readCert(t, filepath.Join(data, "ca", "root.crt")))
	p.h2 = &http.Client{
		Timeout: 60 * time.Second,
		Transport: &http.Transport{
			TLSClientConfig:   &tls.Config{RootCAs: roots},
			ForceAttemptHTTP2: true,
			MaxConnsPerHost:   1,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return p
}

// post sends a form and returns the status, the body and the response.
func (p *attackPortal) post(t *testing.T, r *replica, path string, form url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := p.h2.PostForm(r.base+path, form)
	if err != nil {
		t.Errorf("POST %s on %s: %v", path, r.name, err)
		return nil, ""
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.ProtoMajor != 2 {
		t.Errorf("POST %s on %s went over %s, want HTTP/2", path, r.name, resp.Proto)
	}
	return resp, string(body)
}

// audit counts the audit records of id with action (and detail, if not "").
func (p *attackPortal) audit(t *testing.T, id, action, detail string) int {
	t.Helper()
	out := run(t, "", "audit", "--data", p.data, "--id", id, "--json")
	var events []struct{ Action, Detail string }
	dec := json.NewDecoder(strings.NewReader(out))
	for dec.More() {
		var v any
		if err := dec.Decode(&v); err != nil {
			t.Fatalf("audit --json: %v\n%s", err, out)
		}
		b, _ := json.Marshal(v)
		switch v.(type) {
		case []any:
			var list []struct{ Action, Detail string }
			json.Unmarshal(b, &list)
			events = append(events, list...)
		default:
			var e struct{ Action, Detail string }
			json.Unmarshal(b, &e)
			events = append(events, e)
		}
	}
	n := 0
	for _, e := range events {
		if e.Action == action && (detail == "" || e.Detail == detail) {
			n++
		}
	}
	return n
}

// mails counts the outbox mails that contain s.
func (p *attackPortal) mails(t *testing.T, s string) int {
	t.Helper()
	names, _ := filepath.Glob(filepath.Join(p.data, "outbox", "*.eml"))
	n := 0
	for _, name := range names {
		b, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(b), s) {
			n++
		}
	}
	return n
}

func eachDB(t *testing.T, f func(t *testing.T, db string)) {
	for _, db := range []string{"sqlite", "postgres"} {
		t.Run(db, func(t *testing.T) { f(t, db) })
	}
}

// TestLockoutAttack: 150 wrong passwords at once, multiplexed on HTTP/2,
// spread over the replicas, then the right one. At most 5 passwords are
// checked (counted from the audit log), the right one gets 401, and the
// user gets exactly one lockout mail.
func TestLockoutAttack(t *testing.T) {
	eachDB(t, func(t *testing.T, db string) {
		const id, pw, guesses = "victim", "the victim's password", 150
		p := newAttackPortal(t, db, id, pw)
		var wg sync.WaitGroup
		codes := make(chan int, guesses)
		for i := range guesses {
			wg.Go(func() {
				resp, _ := p.post(t, p.at(i), "/login", url.Values{"id": {id}, "password": {fmt.Sprintf("guess %03d", i)}})
				if resp != nil {
					codes <- resp.StatusCode
				}
			})
		}
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != http.StatusUnauthorized {
				t.Fatalf("a wrong guess answered %d, want 401", c)
			}
		}
		for _, r := range p.replicas {
			resp, _ := p.post(t, r, "/login", url.Values{"id": {id}, "password": {pw}})
			if resp == nil || resp.StatusCode != http.StatusUnauthorized {
				t.Fatalf("the right password on %s after the attack: %v, want 401", r.name, resp.Status)
			}
		}
		if n := p.audit(t, id, "signin.failed", "wrong password"); n != 5 {
			t.Errorf("%d passwords checked and found wrong, want 5", n)
		}
		if n := p.audit(t, id, "signin.lockout", ""); n != 1 {
			t.Errorf("%d lockouts recorded, want 1", n)
		}
		if n := p.mails(t, "Password sign-in to your account is locked"); n != 1 {
			t.Errorf("%d lockout mails, want 1", n)
		}
	})
}

// TestPasswordChangeAttack: with a stolen session, guessing the current
// password at /password is limited like /login, and locks /login too.
func TestPasswordChangeAttack(t *testing.T) {
	eachDB(t, func(t *testing.T, db string) {
		const id, pw = "stolen", "the real password"
		p := newAttackPortal(t, db, id, pw)
		resp, _ := p.post(t, p.at(0), "/login", url.Values{"id": {id}, "password": {pw}})
		var session *http.Cookie
		for _, ck := range resp.Cookies() {
			if strings.HasPrefix(ck.Name, "__Host-") && ck.Value != "" {
				session = ck
			}
		}
		if session == nil {
			t.Fatal("no session after the right password")
		}
		change := func(r *replica, current string) int {
			req, _ := http.NewRequest("POST", r.base+"/password", strings.NewReader(url.Values{
				"current_password": {current}, "new_password": {"attacker's password"}, "new_password_confirm": {"attacker's password"},
			}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.AddCookie(session)
			resp, err := p.h2.Do(req)
			if err != nil {
				t.Error(err)
				return 0
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			return resp.StatusCode
		}
		var wg sync.WaitGroup
		for i := range 30 {
			wg.Go(func() {
				if c := change(p.at(i), fmt.Sprintf("guess %02d", i)); c != http.StatusUnauthorized {
					t.Errorf("a wrong current password answered %d, want 401", c)
				}
			})
		}
		wg.Wait()
		if c := change(p.at(1), pw); c != http.StatusUnauthorized {
			t.Fatalf("the right current password after 30 guesses answered %d, want 401", c)
		}
		if n := p.audit(t, id, "signin.failed", "wrong password"); n != 5 {
			t.Errorf("%d passwords checked, want 5", n)
		}
		if n := p.audit(t, id, "password.changed", ""); n != 0 {
			t.Errorf("the password was changed %d times", n)
		}
	})
}

// TestRecoveryTicketAttack: five tickets, then five confirmations at once:
// one recovery, one mail.
func TestRecoveryTicketAttack(t *testing.T) {
	eachDB(t, func(t *testing.T, db string) {
		const id, pw = "recoverer", "the recoverer's pw"
		p := newAttackPortal(t, db, id, pw)
		var tickets []string
		for i := range 5 {
			resp, _ := p.post(t, p.at(i), "/recover", url.Values{"id": {id}, "password": {pw}})
			tk := recoveryTicket(resp)
			if tk == "" {
				t.Fatalf("POST /recover %d: no ticket", i)
			}
			tickets = append(tickets, tk)
		}
		var wg sync.WaitGroup
		var mu sync.Mutex
		ok := 0
		for i, tk := range tickets {
			wg.Go(func() {
				resp, _ := p.post(t, p.at(i), "/recover/confirm", url.Values{"ticket": {tk}})
				if resp != nil && resp.StatusCode == http.StatusSeeOther {
					mu.Lock()
					ok++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if ok != 1 {
			t.Errorf("%d recoveries from 5 tickets, want 1", ok)
		}
		if n := p.mails(t, "Temporary password: "); n != 1 {
			t.Errorf("%d temporary-password mails, want 1", n)
		}
		if n := p.audit(t, id, "recovery.started", ""); n != 5 {
			t.Errorf("%d recovery.started records, want 5", n)
		}
	})
}

// TestSessionCapAttack: 25 sign-ins without a cookie leave 20 sessions;
// the 5 oldest have ended.
func TestSessionCapAttack(t *testing.T) {
	const id, pw = "many", "many sessions pw"
	p := newAttackPortal(t, "postgres", id, pw)
	var sessions []*http.Cookie
	for i := range 25 {
		resp, _ := p.post(t, p.at(i), "/login", url.Values{"id": {id}, "password": {pw}})
		for _, ck := range resp.Cookies() {
			if strings.HasPrefix(ck.Name, "__Host-") && ck.Value != "" {
				sessions = append(sessions, ck)
			}
		}
	}
	if len(sessions) != 25 {
		t.Fatalf("%d sessions made, want 25", len(sessions))
	}
	c := client(t, p.data, nil)
	for i, s := range sessions {
		code, _ := whoami(t, c, p.at(i+1), s)
		want := http.StatusOK
		if i < 5 {
			want = http.StatusUnauthorized
		}
		if code != want {
			t.Errorf("session %d of 25: whoami %d, want %d", i+1, code, want)
		}
	}
}
