package main

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
)

// hostileBackup encrypts raw tar bytes to pass, as an attacker would.
func hostileBackup(t *testing.T, pass string, archive []byte) string {
	t.Helper()
	r, err := age.NewScryptRecipient(pass)
	if err != nil {
		t.Fatal(err)
	}
	r.SetWorkFactor(10)
	var buf bytes.Buffer
	w, err := age.Encrypt(&buf, r)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(archive)
	w.Close()
	p := filepath.Join(t.TempDir(), "hostile.certportal-backup")
	if err := os.WriteFile(p, buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// diskUse is the bytes of the files under dir.
func diskUse(dir string) int64 {
	var n int64
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

// TestRestoreRefusesHostileSizes: a 2 GiB sparse entry in a file of a few
// kilobytes, and an entry that claims more bytes than the file holds, are
// refused before restore writes more than the input's size; nothing is
// left behind.
func TestRestoreRefusesHostileSizes(t *testing.T) {
	const passphrase = "correct horse battery staple"
	pass := writeSecret(t, passphrase)

	// PAX sparse 1.0: the data holds only the sparse map (one empty
	// fragment); archive/tar would expand it to realsize zeros.
	var sparse bytes.Buffer
	tw := tar.NewWriter(&sparse)
	sparseMap := make([]byte, 512)
	copy(sparseMap, "1\n0\n0\n")
	if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "certportal.db", Size: 512, Mode: 0o600, Format: tar.FormatPAX,
		PAXRecords: map[string]string{"GNU.sparse.major": "1", "GNU.sparse.minor": "0", "GNU.sparse.name": "certportal.db", "GNU.sparse.realsize": "2147483648"}}); err != nil {
		t.Fatal(err)
	}
	tw.Write(sparseMap)
	tw.Close()

	// An entry under the database's size limit, but larger than the file.
	var big bytes.Buffer
	tw = tar.NewWriter(&big)
	tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: "certportal.db", Size: 64 << 20, Mode: 0o600})
	tw.Write(bytes.Repeat([]byte("x"), 4096))
	tw.Flush()

	for _, c := range []struct {
		name    string
		archive []byte
		want    string
	}{
		{"sparse entry", sparse.Bytes(), "sparse"},
		{"entry larger than the file", big.Bytes(), "damaged or truncated"},
	} {
		t.Run(c.name, func(t *testing.T) {
			in := hostileBackup(t, passphrase, c.archive)
			fi, _ := os.Stat(in)
			parent := t.TempDir()
			// Watch the disk while restore runs: it must never hold more
			// than the input's size.
			done := make(chan struct{})
			peak := int64(0)
			go func() {
				for {
					select {
					case <-done:
						return
					default:
						if n := diskUse(parent); n > peak {
							peak = n
						}
					}
				}
			}()
			msg := fails(t, 1, c.want, "", "restore", "--in", in, "--data", filepath.Join(parent, "restored"), "--passphrase-file", pass)
			close(done)
			if !strings.Contains(msg, "nothing was restored") {
				t.Errorf("%q does not say nothing was restored", msg)
			}
			if peak > fi.Size() {
				t.Errorf("restore wrote %d bytes for a %d-byte input", peak, fi.Size())
			}
			if left, _ := os.ReadDir(parent); len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}

// TestRestoreModesArePrivate: a backup whose archive says 0777 and 0644
// restores every file 0600 and every directory 0700.
func TestRestoreModesArePrivate(t *testing.T) {
	const passphrase = "correct horse battery staple"
	data := newData(t)
	pass := writeSecret(t, passphrase)
	good := filepath.Join(t.TempDir(), "good.certportal-backup")
	ok(t, "", "backup", "--data", data, "--out", good, "--passphrase-file", pass)

	// Re-pack the archive with loose modes, contents unchanged.
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		t.Fatal(err)
	}
	f, _ := os.Open(good)
	plain, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tr, tw := tar.NewReader(plain), tar.NewWriter(&out)
	loose := 0
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		h.Mode = 0o777
		if h.Typeflag == tar.TypeReg && loose%2 == 1 {
			h.Mode = 0o644
		}
		loose++
		tw.WriteHeader(h)
		io.Copy(tw, tr)
	}
	tw.Close()
	f.Close()
	in := hostileBackup(t, passphrase, out.Bytes())
	target := filepath.Join(t.TempDir(), "restored")
	ok(t, "", "restore", "--in", in, "--data", target, "--passphrase-file", pass)
	n := 0
	filepath.WalkDir(target, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == target {
			return err
		}
		fi, _ := d.Info()
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if fi.Mode().Perm() != want {
			t.Errorf("%s restored %v, want %v", p, fi.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if n < 5 {
		t.Fatalf("only %d entries restored", n)
	}
}

// TestRestoreRefusesAForeignRootKey: a backup whose ca/root.key is another
// portal's (with a manifest that agrees, as an attacker with the
// passphrase would write it) restores nothing.
func TestRestoreRefusesAForeignRootKey(t *testing.T) {
	const passphrase = "correct horse battery staple"
	data, other := newData(t), newData(t)
	pass := writeSecret(t, passphrase)
	good := filepath.Join(t.TempDir(), "good.certportal-backup")
	ok(t, "", "backup", "--data", data, "--out", good, "--passphrase-file", pass)
	foreign, err := os.ReadFile(filepath.Join(other, "ca", "root.key"))
	if err != nil {
		t.Fatal(err)
	}
	id, _ := age.NewScryptIdentity(passphrase)
	f, _ := os.Open(good)
	defer f.Close()
	plain, err := age.Decrypt(f, id)
	if err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	tr, tw := tar.NewReader(plain), tar.NewWriter(&out)
	sum := sha256.Sum256(foreign)
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		body, _ := io.ReadAll(tr)
		switch h.Name {
		case "ca/root.key":
			body = foreign
		case manifestName:
			var m backupManifest
			if err := json.Unmarshal(body, &m); err != nil {
				t.Fatal(err)
			}
			for i := range m.Files {
				if m.Files[i].Name == "ca/root.key" {
					m.Files[i].Size, m.Files[i].SHA256 = int64(len(foreign)), hex.EncodeToString(sum[:])
				}
			}
			body, _ = json.Marshal(m)
		}
		h.Size = int64(len(body))
		tw.WriteHeader(h)
		tw.Write(body)
	}
	tw.Close()
	in := hostileBackup(t, passphrase, out.Bytes())
	parent := t.TempDir()
	fails(t, 1, "root key", "", "restore", "--in", in, "--data", filepath.Join(parent, "restored"), "--passphrase-file", pass)
	if left, _ := os.ReadDir(parent); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}
