package portal

import (
	"bufio"
	"context"
	"crypto/ed25519"
	"errors"
	"io/fs"
	"os"
	"strings"

	"github.com/certportal/certportal"
)

// AuditReport is what VerifyAudit found.
type AuditReport struct {
	Records     int   // records checked
	V2From      int64 // first record hashed over every column (hash version 2)
	Checkpoints int   // signed checkpoints checked
	LastChecked int64 // the newest checkpoint's record (0: none)
}

// VerifyAudit checks the whole audit log against its hash chain, the
// recorded start of the stronger hashing and every signed checkpoint (the
// database's, those of CheckpointLog, and extra, such as a copy kept
// elsewhere), all of which must be signed by the audit key. The error
// names the first bad sequence number.
func (s *Service) VerifyAudit(ctx context.Context, extra []certportal.AuditCheckpoint) (*AuditReport, error) {
	var pub ed25519.PublicKey
	if s.AuditKey != nil {
		pub = s.AuditKey.Public().(ed25519.PublicKey)
	}
	if s.CheckpointLog != "" {
		logged, err := ReadCheckpoints(s.CheckpointLog, false)
		if err != nil {
			return nil, err
		}
		extra = append(extra, logged...)
	}
	var events []certportal.AuditEvent
	var cps []certportal.AuditCheckpoint
	var v2From int64
	err := s.Store.View(ctx, func(tx certportal.Tx) error {
		var err error
		if events, err = tx.ListAudit(ctx, certportal.AuditFilter{}); err != nil {
			return err
		}
		if v2From, err = tx.AuditV2From(ctx); err != nil {
			return err
		}
		cps, err = tx.Checkpoints(ctx)
		return err
	})
	if err != nil {
		return nil, err
	}
	cps = append(cps, extra...)
	if _, err := certportal.VerifyAudit(events, v2From, cps, pub); err != nil {
		return nil, err
	}
	r := &AuditReport{Records: len(events), V2From: v2From, Checkpoints: len(cps)}
	for _, c := range cps {
		r.LastChecked = max(r.LastChecked, c.Seq)
	}
	return r, nil
}

// Checkpoint signs the newest audit record with the audit key, stores the
// checkpoint and appends its line to CheckpointLog (fsynced). It does
// nothing when the newest record has a checkpoint already (nil, nil).
func (s *Service) Checkpoint(ctx context.Context) (*certportal.AuditCheckpoint, error) {
	key, logPath := s.AuditKey, s.CheckpointLog
	if key == nil {
		return nil, certportal.Errorf(certportal.Internal, "no audit key to sign checkpoints with")
	}
	var c *certportal.AuditCheckpoint
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		c = nil
		seq, hash, err := tx.LastAudit(ctx)
		if err != nil || seq == 0 {
			return err
		}
		cps, err := tx.Checkpoints(ctx)
		if err != nil || len(cps) > 0 && cps[len(cps)-1].Seq >= seq {
			return err
		}
		c = certportal.SignCheckpoint(key, seq, hash, s.now())
		return tx.AddCheckpoint(ctx, c)
	})
	if err != nil || c == nil {
		return nil, err
	}
	if logPath == "" {
		return c, nil
	}
	if err := appendLine(logPath, c.String()); err != nil {
		return c, certportal.WrapError(certportal.Unavailable, err, "the checkpoint is in the database, but "+logPath+" could not be written")
	}
	return c, nil
}

// appendLine appends one line to path (created 0600) and syncs it.
func appendLine(path, line string) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(line + "\n"); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// ReadCheckpoints reads a checkpoint log (one line each, as Checkpoint
// writes them). A missing file holds none when mustExist is false; a line
// that does not parse is an error naming it.
func ReadCheckpoints(path string, mustExist bool) ([]certportal.AuditCheckpoint, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) && !mustExist {
		return nil, nil
	}
	if err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, "cannot read the checkpoint file "+path)
	}
	defer f.Close()
	var out []certportal.AuditCheckpoint
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimRight(sc.Text(), "\r")
		if line == "" {
			continue
		}
		c, err := certportal.ParseCheckpoint(line)
		if err != nil {
			return nil, certportal.Errorf(certportal.Conflict, "line %d of %s is not a checkpoint: %s", n, path, certportal.ErrorMessage(err))
		}
		out = append(out, *c)
	}
	if err := sc.Err(); err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, "cannot read the checkpoint file "+path)
	}
	return out, nil
}
