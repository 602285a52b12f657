package postgres

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/storetest"
)

// crashEnv tells a re-executed test binary to be the replica that dies.
const crashEnv = "CERTPORTAL_POSTGRES_CRASH_CHILD"

// TestReplicaKilled kills a process that issues and revokes certificates
// (the way portal does) with SIGKILL in the middle of its stream, while a
// second replica goes on, and checks that every change the dying process
// reported as committed is in the database, that no account has two valid
// certificates, and that the audit chain holds.
func TestReplicaKilled(t *testing.T) {
	if dsn := os.Getenv(crashEnv); dsn != "" {
		crashChild(dsn)
		return
	}
	db, dsn := openFresh(t)
	ctx := context.Background()
	const accounts = 5
	err := db.Update(ctx, func(tx certportal.Tx) error {
		for i := range accounts {
			id := fmt.Sprintf("crash%d", i)
			if err := tx.CreateAccount(ctx, &certportal.Account{ID: id, Email: id + "@example.com",
				Method: certportal.MethodPassword, Status: certportal.StatusActive}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestReplicaKilled$")
	cmd.Env = append(os.Environ(), crashEnv+"="+dsn)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	// The surviving replica issues for the same accounts meanwhile.
	stop := make(chan struct{})
	survivor := make(chan error, 1)
	go func() {
		for i := 0; ; i++ {
			select {
			case <-stop:
				survivor <- nil
				return
			default:
			}
			if _, err := issue(ctx, db, fmt.Sprintf("crash%d", i%accounts)); err != nil {
				survivor <- err
				return
			}
		}
	}()

	committed := map[string]bool{} // serials the child reported
	sc := bufio.NewScanner(out)
	deadline := time.Now().Add(20 * time.Second)
	killed := false
	for sc.Scan() {
		serial, ok := strings.CutPrefix(sc.Text(), "committed ")
		if !ok || !strings.HasSuffix(serial, ";") {
			continue
		}
		committed[strings.TrimSuffix(serial, ";")] = true
		if !killed && (len(committed) == 100 || time.Now().After(deadline)) {
			cmd.Process.Signal(syscall.SIGKILL) // mid-stream: the child goes on until the signal lands
			killed = true
		}
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("the child was not killed by SIGKILL: %v", err)
	}
	close(stop)
	if err := <-survivor; err != nil {
		t.Errorf("the surviving replica failed: %v", err)
	}
	if len(committed) < 10 {
		t.Fatalf("the child reported only %d commits", len(committed))
	}

	// A replica started afterwards sees it all.
	after := openAgain(t, dsn)
	err = after.View(ctx, func(tx certportal.Tx) error {
		for s := range committed {
			if _, err := tx.Certificate(ctx, s); err != nil {
				t.Errorf("certificate %s reported committed by the killed replica is lost: %v", s, err)
			}
		}
		for i := range accounts {
			valid, err := tx.ListCertificates(ctx, certportal.CertFilter{AccountID: fmt.Sprintf("crash%d", i), Unrevoked: true})
			if err != nil {
				return err
			}
			if len(valid) != 1 {
				t.Errorf("crash%d has %d valid certificates, want 1", i, len(valid))
			}
		}
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		if bad, err := certportal.VerifyAuditChain(events); err != nil {
			t.Errorf("audit chain broken at %d: %v", bad, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d commits reported before SIGKILL, all present", len(committed))
}

// issue does what portal does to issue a certificate: lock the account,
// revoke its valid certificate, insert the new one, audit it.
func issue(ctx context.Context, db *DB, id string) (string, error) {
	now := time.Now()
	c := storetest.NewCert(id, "SOP-ICA1", now)
	err := db.Update(ctx, func(tx certportal.Tx) error {
		return storetest.Supersede(ctx, tx, c, "")
	})
	return c.Serial, err
}

// crashChild issues certificates until it is killed, reporting each
// committed serial on standard output.
func crashChild(dsn string) {
	ctx := context.Background()
	db, err := Open(ctx, dsn, false)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
	for i := 0; ; i++ {
		serial, err := issue(ctx, db, fmt.Sprintf("crash%d", i%5))
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(4)
		}
		fmt.Fprintf(os.Stdout, "committed %s;\n", serial)
	}
}
