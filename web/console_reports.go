package web

import (
	"crypto/x509"
	"encoding/csv"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// The console's reports, for administrators: the audit log, the CAs and
// the certificate inventory as CSV.

// auditPageSize is how many records an audit page lists.
const auditPageSize = 100

// auditFilter is the audit page's form, as typed.
type auditFilter struct {
	Account, Action, From, To string
}

// chainState is what the audit page says about the log's integrity.
type chainState struct {
	Records      int
	OK           bool
	Message      string
	Checkpoints  string // the checkpoint check's sentence ("" when none ran)
	CheckpointOK bool
}

// auditTimeLayouts are the forms the audit page's times are accepted in,
// UTC: what a datetime-local field sends, and a plain date.
var auditTimeLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02"}

func parseAuditTime(name, v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	for _, l := range auditTimeLayouts {
		if t, err := time.ParseInLocation(l, v, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, certportal.Errorf(certportal.Invalid,
		"%s %q is not a date (YYYY-MM-DD) or a date and time (YYYY-MM-DDTHH:MM), in UTC", name, clipForm(v))
}

func clipForm(v string) string {
	if len(v) > 40 {
		return v[:40] + "…"
	}
	return v
}

// auditActions are offered in the action filter (any text is accepted).
var auditActions = []string{
	certportal.ActionAccountCreated, certportal.ActionAccountCanceled, certportal.ActionAccountsImported,
	certportal.ActionRoleChanged, certportal.ActionSignInOK, certportal.ActionSignInFailed, certportal.ActionSignInRefused,
	certportal.ActionLockout, certportal.ActionUnlock, certportal.ActionSignOut, certportal.ActionMethodChanged,
	certportal.ActionCertIssued, certportal.ActionCertRevoked, certportal.ActionPasswordChanged, certportal.ActionRecovery,
	certportal.ActionRecoveryStarted, certportal.ActionMailSent, certportal.ActionMailFailed, certportal.ActionCRLSigned,
	certportal.ActionEmailChanged, certportal.ActionInventoryExported, certportal.ActionBackup, certportal.ActionRootKeyExported,
}

// handleConsoleAudit is GET /admin/audit?account=&action=&from=&to=
// (&before=SEQ for older records): newest first, with the state of the
// hash chain (and of the signed checkpoints, when the server checks them).
func (s *Server) handleConsoleAudit(w http.ResponseWriter, r *http.Request, si *signedIn) {
	v := r.URL.Query()
	f := auditFilter{Account: strings.TrimSpace(v.Get("account")), Action: strings.TrimSpace(v.Get("action")),
		From: strings.TrimSpace(v.Get("from")), To: strings.TrimSpace(v.Get("to"))}
	cd := &consoleData{Filter: f, Actions: auditActions}
	bad := func(err error) {
		s.console(w, r, si, http.StatusBadRequest, "admin_audit", "Audit log", cd, sentence(certportal.ErrorMessage(err)), "")
	}
	q := certportal.AuditQuery{AccountID: f.Account, Action: f.Action, Limit: auditPageSize}
	var err error
	if len(f.Account) > certportal.MaxIDLength || len(f.Action) > 64 {
		bad(certportal.Errorf(certportal.Invalid, "the account or action to filter by is longer than any there is"))
		return
	}
	if q.From, err = parseAuditTime("the time from", f.From); err != nil {
		bad(err)
		return
	}
	if q.To, err = parseAuditTime("the time to", f.To); err != nil {
		bad(err)
		return
	}
	if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
		bad(certportal.Errorf(certportal.Invalid, "the time from must be before the time to"))
		return
	}
	if b := v.Get("before"); b != "" {
		if q.BeforeSeq, err = strconv.ParseInt(b, 10, 64); err != nil || q.BeforeSeq < 1 {
			bad(certportal.Errorf(certportal.Invalid, "the record number %q is not a whole number from 1 on", clipForm(b)))
			return
		}
	}
	if cd.Audit, err = s.Svc.AuditLog(r.Context(), q); err != nil {
		s.fail(w, r, err)
		return
	}
	if len(cd.Audit) == auditPageSize {
		older := url.Values{"account": {f.Account}, "action": {f.Action}, "from": {f.From}, "to": {f.To},
			"before": {strconv.FormatInt(cd.Audit[len(cd.Audit)-1].Seq, 10)}}
		cd.OlderURL = "/admin/audit?" + older.Encode()
	}
	cd.Chain = s.auditChain(r)
	s.console(w, r, si, http.StatusOK, "admin_audit", "Audit log", cd, "", "")
}

// auditChain checks the whole audit log through the service: the hash
// chain, and the signed checkpoints of the database and the checkpoint
// log.
func (s *Server) auditChain(r *http.Request) chainState {
	var st chainState
	rep, err := s.Svc.VerifyAudit(r.Context(), nil)
	if err != nil {
		st.Message = sentence(certportal.ErrorMessage(err))
		st.Checkpoints = "The log does not verify; see above."
		return st
	}
	st.OK, st.CheckpointOK, st.Records = true, true, rep.Records
	st.Message = "The hash chain of all " + strconv.Itoa(rep.Records) + " records verifies: no record was changed, removed or re-ordered since it was written."
	switch {
	case rep.Checkpoints == 0:
		st.Checkpoints = "No signed checkpoint yet: serve writes one every minute that has new records."
	default:
		st.Checkpoints = "All " + strconv.Itoa(rep.Checkpoints) + " signed checkpoints match, up to record " + strconv.FormatInt(rep.LastChecked, 10) + "."
	}
	return st
}

// caRow is one CA on the console's CAs page.
type caRow struct {
	caInfo
	Kind                    string // "root" or "issuing"
	CRLNext                 time.Time
	CRLError                string
	Valid, Expired, Revoked int
	Issues                  bool // an issuing CA: the counts apply
}

// handleConsoleCAs is GET /admin/cas: the root and every issuing CA, when
// each expires, when its CRL must be re-signed, and how many certificates
// each has issued that are valid, expired or revoked.
func (s *Server) handleConsoleCAs(w http.ResponseWriter, r *http.Request, si *signedIn) {
	counts, err := s.Svc.CertificateCounts(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	byIssuer := map[string]certportal.CertificateCount{}
	for _, c := range counts {
		byIssuer[c.Issuer] = c
	}
	crlRow := func(c *x509.Certificate, kind string) caRow {
		row := caRow{caInfo: describe(c), Kind: kind, Issues: kind == "issuing"}
		if n, ok := byIssuer[c.Subject.CommonName]; ok {
			row.Valid, row.Expired, row.Revoked = n.Valid, n.Expired, n.Revoked
		}
		der, err := s.Svc.CRL(r.Context(), c.Subject.CommonName)
		if err == nil {
			var rl *x509.RevocationList
			if rl, err = x509.ParseRevocationList(der); err == nil {
				row.CRLNext = rl.NextUpdate
			}
		}
		if err != nil {
			row.CRLError = sentence(certportal.ErrorMessage(err))
		}
		return row
	}
	cd := &consoleData{}
	cd.CAs = append(cd.CAs, crlRow(s.Svc.Root(), "root"))
	issuers := s.Svc.Issuers()
	for i := len(issuers) - 1; i >= 0; i-- {
		cd.CAs = append(cd.CAs, crlRow(issuers[i], "issuing"))
	}
	s.console(w, r, si, http.StatusOK, "admin_cas", "Certificate authorities", cd, "", "")
}

// inventoryHeader are the columns of GET /admin/certificates.csv.
var inventoryHeader = []string{"serial", "id", "not_after", "status", "thumbprint"}

// neutralise keeps a spreadsheet from running a cell as a formula: a cell
// that starts with = + - @, a tab or a carriage return gets a leading
// apostrophe (OWASP "CSV injection"). An account ID may start with - or @.
func neutralise(cell string) string {
	if portal.IsFormula(cell) {
		return "'" + cell
	}
	return cell
}

// handleConsoleExport is GET /admin/certificates.csv: every certificate,
// one row each, streamed a page at a time. The download is audited.
func (s *Server) handleConsoleExport(w http.ResponseWriter, r *http.Request, si *signedIn) {
	now := s.Svc.Time()
	var cw *csv.Writer
	start := func() {
		h := w.Header()
		h.Set("Content-Type", "text/csv; charset=utf-8")
		h.Set("Content-Disposition", `attachment; filename="certificates.csv"`)
		h.Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusOK)
		cw = csv.NewWriter(w)
		_ = cw.Write(inventoryHeader)
	}
	rows := 0
	err := s.Svc.Inventory(r.Context(), si.actor(r), func(c *certportal.Certificate) error {
		if cw == nil {
			start()
		}
		rows++
		row := []string{c.Serial, c.AccountID, c.NotAfter.UTC().Format(time.RFC3339), c.State(now), c.Thumbprint}
		for i := range row {
			row[i] = neutralise(row[i])
		}
		if err := cw.Write(row); err != nil {
			return err
		}
		if rows%1000 == 0 {
			cw.Flush()
		}
		return cw.Error()
	})
	if err != nil && cw == nil {
		s.fail(w, r, err)
		return
	}
	if err != nil {
		// The status is sent already: the log says why the file ends early.
		s.Log.Warn("certificate inventory export cut short", "rows", rows, "err", err)
		return
	}
	if cw == nil {
		start()
	}
	cw.Flush()
}
