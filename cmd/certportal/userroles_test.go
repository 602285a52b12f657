package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestUserSetRole makes the first admin on the command line: the role is
// shown by user show and list, audited as the administrator's, and a
// wrong role or ID is refused with one sentence and changes nothing.
func TestUserSetRole(t *testing.T) {
	data := newData(t)
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com")
	ok(t, "", "user", "add", "--data", data, "--id", "bob", "--email", "bob@example.com")
	out := ok(t, "", "user", "set-role", "--data", data, "--id", "ALICE", "--role", "Admin")
	if !strings.Contains(out, "alice's role is now admin.") {
		t.Errorf("set-role says %q", out)
	}
	var acc accountJSON
	json.Unmarshal([]byte(ok(t, "", "user", "show", "--data", data, "--id", "alice", "--json")), &acc)
	if acc.Role != "admin" {
		t.Errorf("user show --json: role %q, want admin", acc.Role)
	}
	list := ok(t, "", "user", "list", "--data", data)
	lines := strings.Split(strings.TrimSpace(list), "\n")
	if len(lines) != 3 || !strings.HasSuffix(lines[0], "ROLE") || !strings.HasSuffix(lines[1], "admin") || !strings.HasSuffix(lines[2], "user") {
		t.Errorf("user list:\n%s\nwant a ROLE column: admin for alice, user for bob", list)
	}
	found := false
	for _, e := range auditOf(t, data, "alice") {
		found = found || e.Action == "role.changed" && e.Actor == "admin" && e.Remote == "cli" && e.Detail == "from user to admin"
	}
	if !found {
		t.Error("the audit log has no role.changed by the administrator")
	}
	before := snapshot(t, data)
	fails(t, 1, `unknown role "root"`, "", "user", "set-role", "--data", data, "--id", "bob", "--role", "root")
	fails(t, 1, "no user", "", "user", "set-role", "--data", data, "--id", "nobody", "--role", "admin")
	fails(t, 1, "has the role admin already", "", "user", "set-role", "--data", data, "--id", "alice", "--role", "admin")
	fails(t, 2, "role", "", "user", "set-role", "--data", data, "--id", "bob")
	if after := snapshot(t, data); after != before {
		t.Errorf("refused set-role commands changed the data:\n%s\nthen\n%s", before, after)
	}
}

// TestUserImport imports a CSV: every account is added and gets a mail
// with its own temporary password, which signs in; a file with one bad
// row adds nothing and names the line.
func TestUserImport(t *testing.T) {
	data := newData(t)
	ok(t, "", "user", "add", "--data", data, "--id", "taken", "--email", "taken@example.com")
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	before := snapshot(t, data)
	for _, c := range []struct{ csv, want string }{
		{"id,email\nann,ann@example.com\nben,not-an-address\n", "line 3: "},
		{"ann,ann@example.com\nTAKEN,t2@example.com\n", `line 2: the user ID "TAKEN" is taken`},
		{"ann,ann@example.com,superuser\n", `line 1: unknown role "superuser"`},
		{"ann,ann@example.com\n\"=HYPERLINK(\"\"http://x.example/\"\")\",x@example.com\n", "line 2: the cell"},
	} {
		fails(t, 1, c.want, "", "user", "import", "--data", data, "--csv", write("bad.csv", c.csv))
	}
	fails(t, 1, "cannot read", "", "user", "import", "--data", data, "--csv", filepath.Join(dir, "missing.csv"))
	if after := snapshot(t, data); after != before {
		t.Errorf("refused imports changed the data:\n%s\nthen\n%s", before, after)
	}

	mailsBefore := len(outbox(t, data))
	out := ok(t, "", "user", "import", "--data", data, "--csv", write("staff.csv",
		"id,email,role\nann,ann@example.com\nben,ben@example.com,helpdesk\ncleo,cleo@example.com,user\n"))
	if !strings.Contains(out, "Imported 3 accounts") || !strings.Contains(out, "3 temporary passwords mailed") {
		t.Errorf("user import says %q", out)
	}
	mails := outbox(t, data)[mailsBefore:]
	passwords := map[string]string{}
	for _, m := range mails {
		if g := tempPasswordRe.FindStringSubmatch(m.body); g != nil {
			for _, id := range []string{"ann", "ben", "cleo"} {
				if strings.Contains(m.to, id+"@example.com") {
					if passwords[id] != "" {
						t.Errorf("%s got two mails", id)
					}
					passwords[id] = g[1]
				}
			}
		}
	}
	if len(passwords) != 3 {
		t.Fatalf("temporary passwords mailed to %v, want ann, ben and cleo", passwords)
	}
	var ben accountJSON
	json.Unmarshal([]byte(ok(t, "", "user", "show", "--data", data, "--id", "ben", "--json")), &ben)
	if ben.Role != "helpdesk" || ben.Method != "password" || ben.PasswordExpires == "" {
		t.Errorf("ben after the import: %+v", ben)
	}
	p := startPortal(t, data)
	if code := p.login(t, "cleo", passwords["cleo"]); code != 303 {
		t.Errorf("cleo's mailed temporary password: sign-in %d, want 303", code)
	}
}
