package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"database/sql"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	_ "modernc.org/sqlite"

	"github.com/certportal/certportal"
)

// auditFixture is a data dir with records 1..n2, signed checkpoints at n1
// and n2, and a copy of the checkpoint log kept elsewhere.
type auditFixture struct {
	data, copy string
	n1, n2     int64
}

var checkpointSeq = regexp.MustCompile(`audit record (\d+)`)

func newAuditFixture(t *testing.T) *auditFixture {
	t.Helper()
	f := &auditFixture{data: newData(t)}
	checkpoint := func() int64 {
		out := ok(t, "", "audit", "checkpoint", "--data", f.data)
		m := checkpointSeq.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("audit checkpoint: %q", out)
		}
		n, _ := strconv.ParseInt(m[1], 10, 64)
		return n
	}
	for i := range 4 {
		ok(t, "", "user", "add", "--data", f.data, "--id", fmt.Sprintf("a%d", i), "--email", fmt.Sprintf("a%d@example.com", i))
	}
	f.n1 = checkpoint()
	for i := range 4 {
		ok(t, "", "user", "add", "--data", f.data, "--id", fmt.Sprintf("b%d", i), "--email", fmt.Sprintf("b%d@example.com", i))
	}
	f.n2 = checkpoint()
	if f.n1 < 4 || f.n2 <= f.n1 {
		t.Fatalf("checkpoints at %d and %d", f.n1, f.n2)
	}
	b, err := os.ReadFile(filepath.Join(f.data, checkpointLogFile))
	if err != nil {
		t.Fatal(err)
	}
	f.copy = filepath.Join(t.TempDir(), "checkpoints-kept-elsewhere.log")
	if err := os.WriteFile(f.copy, b, 0o600); err != nil {
		t.Fatal(err)
	}
	out := ok(t, "", "audit", "--verify", "--data", f.data, "--checkpoints", f.copy)
	if !strings.Contains(out, fmt.Sprintf("match, up to record %d", f.n2)) {
		t.Fatalf("audit --verify before the attack: %q", out)
	}
	return f
}

// attacker opens the database as the sqlite3 shell would, and drops the
// triggers that refuse changes first.
func (f *auditFixture) attacker(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite", filepath.Join(f.data, dbFile))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	for _, q := range []string{`DROP TRIGGER audit_no_update`, `DROP TRIGGER audit_no_delete`,
		`DROP TRIGGER audit_checkpoints_no_delete`, `DROP TRIGGER audit_checkpoints_no_update`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	return db
}

// recompute rewrites the hash chain from record from on, with the
// project's own hash function, as an attacker who read the code would.
func recompute(t *testing.T, db *sql.DB, from int64) {
	t.Helper()
	rows, err := db.Query(`SELECT seq, time, actor, account_id, action, detail, remote, hash_version, account_key FROM audit ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	var all []certportal.AuditEvent
	for rows.Next() {
		var e certportal.AuditEvent
		var at int64
		rows.Scan(&e.Seq, &at, &e.Actor, &e.AccountID, &e.Action, &e.Detail, &e.Remote, &e.HashVersion, &e.AccountKey)
		e.Time = time.UnixMicro(at).UTC()
		all = append(all, e)
	}
	rows.Close()
	prev := ""
	for i := range all {
		e := &all[i]
		if e.Seq >= from {
			e.PrevHash = prev
			e.Hash = certportal.AuditHash(e)
			if _, err := db.Exec(`UPDATE audit SET prev_hash = ?, hash = ? WHERE seq = ?`, e.PrevHash, e.Hash, e.Seq); err != nil {
				t.Fatal(err)
			}
		} else if err := db.QueryRow(`SELECT hash FROM audit WHERE seq = ?`, e.Seq).Scan(&e.Hash); err != nil {
			t.Fatal(err)
		}
		prev = e.Hash
	}
}

// TestAuditAttacks: each way the review rewrote the audit log is now
// found by audit --verify, which names the first bad sequence number.
func TestAuditAttacks(t *testing.T) {
	t.Run("edit a record and recompute the chain", func(t *testing.T) {
		f := newAuditFixture(t)
		db := f.attacker(t)
		if _, err := db.Exec(`UPDATE audit SET detail = 'nothing to see' WHERE seq = 3`); err != nil {
			t.Fatal(err)
		}
		recompute(t, db, 3)
		fails(t, 1, fmt.Sprintf("audit record %d does not match its signed checkpoint: a record from 1 to %d was changed", f.n1, f.n1), "", "audit", "--verify", "--data", f.data)
	})
	t.Run("remove the newest records", func(t *testing.T) {
		f := newAuditFixture(t)
		db := f.attacker(t)
		if _, err := db.Exec(`DELETE FROM audit WHERE seq > ?`, f.n1+1); err != nil {
			t.Fatal(err)
		}
		fails(t, 1, fmt.Sprintf("ends at record %d, before the signed checkpoint at record %d", f.n1+1, f.n2), "", "audit", "--verify", "--data", f.data)
	})
	t.Run("change the account column", func(t *testing.T) {
		f := newAuditFixture(t)
		db := f.attacker(t)
		if _, err := db.Exec(`UPDATE audit SET account_key = 'someone-else' WHERE seq = 2`); err != nil {
			t.Fatal(err)
		}
		fails(t, 1, "audit record 2 has been altered: its account column was changed", "", "audit", "--verify", "--data", f.data)
		if _, err := db.Exec(`UPDATE audit SET account_id = 'someone-else', account_key = 'someone-else' WHERE seq = 2`); err != nil {
			t.Fatal(err)
		}
		fails(t, 1, "audit record 2 has been altered", "", "audit", "--verify", "--data", f.data)
	})
	t.Run("forge a checkpoint line", func(t *testing.T) {
		f := newAuditFixture(t)
		p := filepath.Join(f.data, checkpointLogFile)
		b, _ := os.ReadFile(p)
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		fields := strings.Fields(lines[len(lines)-1])
		fields[2] = strings.Repeat("0", 64) // another hash, the old signature
		lines = append(lines, strings.Join(fields, " "))
		os.WriteFile(p, []byte(strings.Join(lines, "\n")+"\n"), 0o600)
		fails(t, 1, fmt.Sprintf("the audit checkpoint at record %d is not signed by this installation's audit key", f.n2), "", "audit", "--verify", "--data", f.data)
	})
	t.Run("rewrite everything with a new audit key", func(t *testing.T) {
		// The attacker has the server: recomputes the chain, removes the
		// checkpoints, makes a new audit key and signs anew. The local
		// check passes; the copy kept elsewhere does not.
		f := newAuditFixture(t)
		db := f.attacker(t)
		if _, err := db.Exec(`UPDATE audit SET detail = 'nothing to see' WHERE seq = 3`); err != nil {
			t.Fatal(err)
		}
		recompute(t, db, 3)
		if _, err := db.Exec(`DELETE FROM audit_checkpoints`); err != nil {
			t.Fatal(err)
		}
		os.Remove(filepath.Join(f.data, checkpointLogFile))
		_, key, _ := ed25519.GenerateKey(rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		os.WriteFile(filepath.Join(f.data, caDir, auditKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		ok(t, "", "audit", "checkpoint", "--data", f.data)
		ok(t, "", "audit", "--verify", "--data", f.data)
		fails(t, 1, "is not signed by this installation's audit key", "", "audit", "--verify", "--data", f.data, "--checkpoints", f.copy)
	})
}
