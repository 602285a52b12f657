package portal_test

import (
	"strings"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// FuzzParseAccountsCSV: any upload either is refused as Invalid with a
// message, or yields rows that each pass the account rules, hold no
// formula cell, have distinct IDs and a known role.
func FuzzParseAccountsCSV(f *testing.F) {
	for _, seed := range []string{
		"id,email,role\nalice,alice@example.com,admin\nbob,bob@example.com\n",
		"\xef\xbb\xbfid,email\ncarol,carol@example.com\n",
		"dave,=HYPERLINK(\"http://x\")\n",
		"eve,eve@example.com,root\n",
		"a,a@example.com\nA,a2@example.com\n",
		"\"x\ny\",z@example.com\n",
		"",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, data string) {
		rows, err := portal.ParseAccountsCSV(strings.NewReader(data))
		if err != nil {
			if certportal.ErrorCodeOf(err) != certportal.Invalid || certportal.ErrorMessage(err) == "" {
				t.Fatalf("refusal %v is not Invalid with a message", err)
			}
			return
		}
		seen := map[string]bool{}
		for _, r := range rows {
			if certportal.ValidateID(r.ID) != nil || certportal.ValidateEmail(r.Email) != nil ||
				portal.IsFormula(r.ID) || portal.IsFormula(r.Email) || seen[certportal.IDKey(r.ID)] {
				t.Fatalf("accepted a bad row %+v", r)
			}
			if _, err := certportal.ParseRole(string(r.Role)); err != nil {
				t.Fatalf("accepted role %q", r.Role)
			}
			seen[certportal.IDKey(r.ID)] = true
		}
	})
}
