package portal

import (
	"bytes"
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/certportal/certportal"
)

// MaxImportRows bounds one import: ten times the 10,000 rows SPEC.md asks
// for in one go, and still one transaction of a few seconds.
const MaxImportRows = 100_000

// NewAccount is one account to add: a row of an import, or the console's
// "add an account" form.
type NewAccount struct {
	ID, Email string
	Role      certportal.Role
	// Line is the row's line in the CSV file (0 for a form), which an
	// error names.
	Line int
}

// formulaStart are the characters that make a spreadsheet read a cell as
// a formula (OWASP "CSV injection"): = + - @, and tab and carriage return,
// which some spreadsheets skip before looking.
const formulaStart = "=+-@\t\r"

// IsFormula reports whether a spreadsheet would run a cell as a formula.
func IsFormula(cell string) bool {
	return cell != "" && strings.ContainsRune(formulaStart, rune(cell[0]))
}

// ParseAccountsCSV reads a CSV file of accounts, columns id,email[,role]
// (an optional header row names them), and checks every row: the ID and
// e-mail rules of every account, a known role (user when left out), no ID
// twice, and no cell a spreadsheet would run as a formula (such a cell is
// refused, not imported: it would be exported again one day). The first
// bad row's error names its line; nothing is returned with it.
func ParseAccountsCSV(r io.Reader) ([]NewAccount, error) {
	data, err := io.ReadAll(io.LimitReader(r, 64<<20))
	if err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, "the CSV file could not be read")
	}
	data = bytes.TrimPrefix(data, []byte("\xef\xbb\xbf")) // the byte order mark spreadsheets write
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1 // checked below, with a message that names the line
	cr.ReuseRecord = true
	var out []NewAccount
	seen := map[string]int{} // ID key -> line
	for first := true; ; first = false {
		rec, err := cr.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			var pe *csv.ParseError
			if errors.As(err, &pe) {
				return nil, lineError(pe.StartLine, "the CSV is malformed (%v)", pe.Err)
			}
			return nil, certportal.WrapError(certportal.Invalid, err, "the CSV file could not be read")
		}
		line, _ := cr.FieldPos(0)
		if first && len(rec) >= 2 && strings.EqualFold(strings.TrimSpace(rec[0]), "id") &&
			strings.Contains(strings.ToLower(rec[1]), "mail") {
			continue // the header row
		}
		if len(rec) == 1 && strings.TrimSpace(rec[0]) == "" {
			continue // an empty line at the end
		}
		if len(rec) < 2 || len(rec) > 3 {
			return nil, lineError(line, "a row has 2 or 3 columns (id,email[,role]); this one has %d", len(rec))
		}
		for _, cell := range rec {
			if IsFormula(cell) {
				return nil, lineError(line, "the cell %q starts with %q, which a spreadsheet would run as a formula; such cells are not imported", clip(cell), cell[:1])
			}
		}
		a := NewAccount{ID: strings.TrimSpace(rec[0]), Email: strings.TrimSpace(rec[1]), Role: certportal.RoleUser, Line: line}
		if err := certportal.ValidateID(a.ID); err != nil {
			return nil, lineError(line, "%s", certportal.ErrorMessage(err))
		}
		if err := certportal.ValidateEmail(a.Email); err != nil {
			return nil, lineError(line, "%s", certportal.ErrorMessage(err))
		}
		if len(rec) == 3 && strings.TrimSpace(rec[2]) != "" {
			if a.Role, err = certportal.ParseRole(rec[2]); err != nil {
				return nil, lineError(line, "%s", certportal.ErrorMessage(err))
			}
		}
		if prev, dup := seen[certportal.IDKey(a.ID)]; dup {
			return nil, lineError(line, "the user ID %q is on line %d already", a.ID, prev)
		}
		seen[certportal.IDKey(a.ID)] = line
		if len(out) == MaxImportRows {
			return nil, lineError(line, "an import holds at most %d accounts; split the file", MaxImportRows)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, certportal.Errorf(certportal.Invalid, "the CSV file holds no accounts (columns: id,email[,role])")
	}
	return out, nil
}

func lineError(line int, format string, args ...any) error {
	return certportal.Errorf(certportal.Invalid, "line %d: %s", line, fmt.Sprintf(format, args...))
}

// clip shortens a cell for a message.
func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// Import adds accounts, all or none, in one transaction: each account
// (method password, no password yet), its audit record, and a queued mail
// that will carry its temporary password, which the mail sender makes and
// sends after the commit (SendQueuedMail). No mail is sent while the
// transaction runs, so 10,000 accounts hold SQLite's write lock for the
// time of their inserts only. An ID that is taken fails the whole import
// with the row's line. source names the import in the audit log (a file
// name, "console upload").
func (s *Service) Import(ctx context.Context, a Actor, source string, rows []NewAccount) error {
	if len(rows) == 0 {
		return certportal.Errorf(certportal.Invalid, "there are no accounts to add")
	}
	for _, r := range rows {
		if err := certportal.ValidateID(r.ID); err != nil {
			return err
		}
		if err := certportal.ValidateEmail(r.Email); err != nil {
			return err
		}
		if !r.Role.Valid() {
			return certportal.Errorf(certportal.Invalid, "unknown role %q; use user, helpdesk or admin", r.Role)
		}
	}
	now := s.now()
	err := s.Store.Update(ctx, func(tx certportal.Tx) error {
		for _, r := range rows {
			acc := &certportal.Account{
				ID: r.ID, Email: r.Email, Role: r.Role,
				Method: certportal.MethodPassword, Status: certportal.StatusActive,
				Created: now, Updated: now,
				// No password until the sender makes the temporary one:
				// an empty hash matches no password.
			}
			if err := tx.CreateAccount(ctx, acc); err != nil {
				if certportal.ErrorCodeOf(err) == certportal.Conflict && r.Line > 0 {
					return certportal.WrapError(certportal.Conflict, err, fmt.Sprintf("line %d: the user ID %q is taken; nothing was imported", r.Line, r.ID))
				}
				return err
			}
			detail := "email " + r.Email
			if r.Role != certportal.RoleUser {
				detail += ", role " + string(r.Role)
			}
			if err := s.audit(ctx, tx, a, acc.ID, certportal.ActionAccountCreated, detail); err != nil {
				return err
			}
			if err := tx.QueueMail(ctx, &certportal.QueuedMail{AccountID: acc.ID, Kind: certportal.MailTemporaryPassword,
				Created: now, NextTry: now}); err != nil {
				return err
			}
		}
		if len(rows) > 1 || rows[0].Line > 0 {
			return s.audit(ctx, tx, a, "", certportal.ActionAccountsImported, fmt.Sprintf("%d accounts from %s", len(rows), source))
		}
		return nil
	})
	if err != nil {
		return err
	}
	s.wakeMailSender()
	return nil
}
