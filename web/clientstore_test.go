package web_test

import (
	"context"
	"net/url"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/clientstore"
	"github.com/certportal/certportal/portal"
)

// TestStoriesAnotherPC walks SPEC stories 4 and 5 with the user's side:
// the legacy PKCS#12 from the portal is imported on one PC, exported with
// its key, imported on another, and signs in there; after cancellation the
// about page names the three certificates to delete.
func TestStoriesAnotherPC(t *testing.T) {
	e := newEnv(t)
	e.addUser("alice", aliceMail, alicePW)
	b := e.client(nil)
	e.login(b, "alice", alicePW)
	r := e.post(b, "/certificate", url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}, "format": {"legacy"}})
	if r.StatusCode != 200 {
		t.Fatalf("POST /certificate format=legacy: %d", r.StatusCode)
	}
	pc1, err := clientstore.Open(filepath.Join(t.TempDir(), "pc1"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc1.Import([]byte(r.body), p12Password); err != nil {
		t.Fatalf("importing the portal's legacy PKCS#12: %v", err)
	}
	personal, err := pc1.List(clientstore.Personal)
	if err != nil || len(personal) != 1 {
		t.Fatalf("personal store after import: %v %v", personal, err)
	}
	moved, err := pc1.Export(personal[0].Thumbprint, "another file password", false)
	if err != nil {
		t.Fatalf("export: %v", err)
	}
	pc2, err := clientstore.Open(filepath.Join(t.TempDir(), "pc2"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pc2.Import(moved, "another file password"); err != nil {
		t.Fatalf("import on the other PC: %v", err)
	}
	w, err := clientstore.Whoami(context.Background(), e.srv.URL, pc2, "")
	if err != nil || w.ID != "alice" || w.Method != "certificate" || w.Serial != personal[0].Serial {
		t.Fatalf("whoami from the other PC: %+v %v", w, err)
	}

	if err := e.svc.CancelUser(context.Background(), portal.Admin, "alice"); err != nil {
		t.Fatal(err)
	}
	if _, err := clientstore.Whoami(context.Background(), e.srv.URL, pc2, ""); certportal.ErrorCodeOf(err) != certportal.Forbidden {
		t.Errorf("whoami after cancellation: %v, want Forbidden", err)
	}
	about := e.get(e.client(nil), "/about/certificate").body
	for _, st := range []string{clientstore.Intermediate, clientstore.Root} {
		list, err := pc2.List(st)
		if err != nil || len(list) != 1 {
			t.Fatalf("%s store: %v %v", st, list, err)
		}
		cmd := "certportal store delete " + list[0].Thumbprint + " --store " + st
		if !strings.Contains(about, cmd) {
			t.Errorf("the about page lacks %q", cmd)
		}
		if err := pc2.Delete(list[0].Thumbprint, st); err != nil {
			t.Errorf("deleting from %s: %v", st, err)
		}
	}
}
