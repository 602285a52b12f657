package clientstore

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/certportal/certportal"
)

// colons writes a thumbprint as "aa:bb:...", the way some tools show it.
func colons(h string) string {
	var parts []string
	for i := 0; i < len(h); i += 2 {
		parts = append(parts, h[i:i+2])
	}
	return strings.Join(parts, ":")
}

func TestDelete(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := importedStore(t, p)
	leaf := certportal.Thumbprint(p.leaf.Raw)
	ica := certportal.Thumbprint(p.ica.Raw)
	root := certportal.Thumbprint(p.root.Raw)

	refusals := []struct {
		name, thumbprint, store string
		code                    certportal.ErrorCode
	}{
		{"unknown", strings.Repeat("0", 40), "", certportal.NotFound},
		{"in another store", root, Personal, certportal.NotFound},
		{"no such store", root, "trusted", certportal.Invalid},
		{"not hex", "not a thumbprint", "", certportal.Invalid},
		{"too short", "ABCD", "", certportal.Invalid},
	}
	for _, tt := range refusals {
		t.Run(tt.name, func(t *testing.T) {
			before := snapshot(t, s.Dir())
			wantCode(t, s.Delete(tt.thumbprint, tt.store), tt.code)
			if after := snapshot(t, s.Dir()); strings.Join(before, "\n") != strings.Join(after, "\n") {
				t.Errorf("a refused delete changed the store")
			}
		})
	}

	// As users type or paste them: lower case, colons, and the U+200E
	// that Windows puts in front of a copied thumbprint.
	deletes := []struct {
		name, typed, store string
	}{
		{"leaf lower case", strings.ToLower(leaf), ""},
		{"intermediate with colons", colons(ica), Intermediate},
		{"root pasted from Windows", "\u200e" + strings.ToLower(colons(root)[:20]) + " " + colons(root)[21:], ""},
	}
	for _, tt := range deletes {
		t.Run(tt.name, func(t *testing.T) {
			if err := s.Delete(tt.typed, tt.store); err != nil {
				t.Fatalf("Delete(%q): %v", tt.typed, err)
			}
		})
	}
	list, err := s.List("")
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 0 {
		t.Errorf("after deleting all three the stores hold %v", thumbs(list))
	}
	for _, name := range storeNames {
		des, err := os.ReadDir(filepath.Join(s.Dir(), name))
		if err != nil {
			t.Fatal(err)
		}
		for _, de := range des {
			t.Errorf("file %s/%s left behind (the key must go with its certificate)", name, de.Name())
		}
	}
	wantCode(t, s.Delete(leaf, ""), certportal.NotFound)
}

// TestDeleteAmbiguous: a certificate in two stores needs --store.
func TestDeleteAmbiguous(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := importedStore(t, p)
	root := certportal.Thumbprint(p.root.Raw)
	// The root also in intermediate, as a user could copy it by hand.
	data := readFile(t, filepath.Join(s.Dir(), Root, root+".pem"))
	writeFile(t, filepath.Join(s.Dir(), Intermediate, root+".pem"), data)
	e := wantCode(t, s.Delete(root, ""), certportal.Invalid)
	if !strings.Contains(e.Message, "intermediate, root") {
		t.Errorf("message %q does not name the stores", e.Message)
	}
	if err := s.Delete(root, Intermediate); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(root, ""); err != nil {
		t.Fatal(err)
	}
	list, _ := s.List(Root)
	if len(list) != 0 {
		t.Errorf("root store still holds %v", thumbs(list))
	}
}

func TestListStore(t *testing.T) {
	p := newPKI(t, "p256", "alice")
	s := importedStore(t, p)
	for _, name := range storeNames {
		list, err := s.List(name)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 1 || list[0].Store != name {
			t.Errorf("List(%q) = %v, want one entry of that store", name, thumbs(list))
		}
		if name == Personal && !list[0].HasKey {
			t.Errorf("the personal entry has HasKey false")
		}
	}
	_, err := s.List("Personal ")
	wantCode(t, err, certportal.Invalid)
}

func TestDefaultDir(t *testing.T) {
	t.Setenv("XDG_DATA_HOME", "/xdg/data")
	if d, err := DefaultDir(); err != nil || d != "/xdg/data/certportal/store" {
		t.Errorf("with XDG_DATA_HOME: %q, %v", d, err)
	}
	t.Setenv("XDG_DATA_HOME", "")
	t.Setenv("HOME", "/home/u")
	if d, err := DefaultDir(); err != nil || d != "/home/u/.local/share/certportal/store" {
		t.Errorf("without XDG_DATA_HOME: %q, %v", d, err)
	}
}
