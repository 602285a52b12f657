package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal/internal/freeport"
)

// freeAddr returns a loopback address with a port nobody listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	addr, err := freeport.Addr()
	if err != nil {
		t.Fatal(err)
	}
	return addr
}

// startServe runs `certportal serve` on free ports until the test ends and
// returns the HTTPS base URL.
func startServe(t *testing.T, data string) string {
	t.Helper()
	base, _, _, _ := serveProcess(t, data)
	return base
}

// browser is an HTTPS client that trusts the portal's root and keeps cookies.
func browser(t *testing.T, data string) *http.Client {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "ca", "root.crt"))
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	root, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(root)
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// TestUsersSide walks the user's side end to end: the portal hands out a
// .p12, the store imports it into three stores, whoami signs in with it,
// export moves it to a second store, revocation stops it, and delete
// cleans up.
func TestUsersSide(t *testing.T) {
	data := newData(t)
	pwFile := writeSecret(t, "alice's account pw")
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com", "--password-file", pwFile)
	base := startServe(t, data)

	// The portal issues the certificate to the signed-in user.
	c := browser(t, data)
	resp, err := c.PostForm(base+"/login", url.Values{"id": {"alice"}, "password": {"alice's account pw"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("login: %s", resp.Status)
	}
	const p12pw = "carry it over safely"
	req, _ := http.NewRequest("POST", base+"/certificate", strings.NewReader(url.Values{"p12_password": {p12pw}, "p12_password_confirm": {p12pw}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err = c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	p12, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/x-pkcs12" {
		t.Fatalf("POST /certificate: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	dir := t.TempDir()
	p12File := filepath.Join(dir, "alice.p12")
	os.WriteFile(p12File, p12, 0o600)
	p12pwFile := writeSecret(t, p12pw)

	store1 := filepath.Join(dir, "store1")
	ok(t, "", "store", "import", p12File, "--store-dir", store1, "--password-file", p12pwFile)
	again := ok(t, "", "store", "import", p12File, "--store-dir", store1, "--password-file", p12pwFile, "--json")
	if strings.Contains(again, `"added": true`) {
		t.Errorf("a second import added something: %s", again)
	}
	var entries []entryJSON
	json.Unmarshal([]byte(ok(t, "", "store", "list", "--store-dir", store1, "--json")), &entries)
	stores := map[string]entryJSON{}
	for _, e := range entries {
		stores[e.Store] = e
	}
	if len(entries) != 3 || stores["personal"].IssuedTo != "alice" || stores["intermediate"].IssuedTo != "SOP-ICA1" || stores["root"].IssuedTo != "SOP-RCA" {
		t.Fatalf("store list after import: %+v", entries)
	}
	var cas []caJSON
	json.Unmarshal([]byte(ok(t, "", "ca", "show", "--data", data, "--json")), &cas)
	if stores["root"].Thumbprint != cas[0].Thumbprint || stores["intermediate"].Thumbprint != cas[1].Thumbprint {
		t.Errorf("thumbprints in the store differ from ca show: %+v vs %+v", stores, cas)
	}
	var certs []certJSON
	json.Unmarshal([]byte(ok(t, "", "cert", "list", "--data", data, "--json")), &certs)
	if len(certs) != 1 || certs[0].Thumbprint != stores["personal"].Thumbprint {
		t.Fatalf("the personal certificate is not the one the portal recorded: %+v vs %+v", stores["personal"], certs)
	}

	if who := strings.TrimSpace(ok(t, "", "whoami", "--url", base, "--store-dir", store1)); who != "alice" {
		t.Fatalf("whoami printed %q", who)
	}

	exported := filepath.Join(dir, "moved.p12")
	ok(t, "", "store", "export", "--out", exported, "--store-dir", store1, "--password-file", p12pwFile)
	fails(t, 1, "exists", "", "store", "export", "--out", exported, "--store-dir", store1, "--password-file", p12pwFile)
	store2 := filepath.Join(dir, "store2")
	ok(t, "", "store", "import", exported, "--store-dir", store2, "--password-file", p12pwFile)
	if who := strings.TrimSpace(ok(t, "", "whoami", "--url", base, "--store-dir", store2)); who != "alice" {
		t.Fatalf("whoami from the second store printed %q", who)
	}

	// A store whose key is encrypted with a passphrase (age): signing in
	// needs it, and a wrong one says so.
	store3 := filepath.Join(dir, "store3")
	keyPass := writeSecret(t, "a passphrase for my keys")
	ok(t, "", "store", "import", p12File, "--store-dir", store3, "--password-file", p12pwFile, "--encrypt-key", "--key-passphrase-file", keyPass)
	keyFile := filepath.Join(store3, "personal", stores["personal"].Thumbprint+".key")
	if b, err := os.ReadFile(keyFile); err != nil || !strings.HasPrefix(string(b), "-----BEGIN AGE ENCRYPTED FILE-----") {
		t.Fatalf("the key in %s is not age-encrypted (%v):\n%.60s", keyFile, err, b)
	}
	fails(t, 1, "--key-passphrase-file", "", "whoami", "--url", base, "--store-dir", store3)
	store4 := filepath.Join(dir, "store4")
	fails(t, 1, "--key-passphrase-file", "", "store", "import", p12File, "--store-dir", store4, "--password-file", p12pwFile, "--encrypt-key")
	if keys, _ := filepath.Glob(filepath.Join(store4, "personal", "*")); len(keys) != 0 {
		t.Errorf("an import that could not encrypt the key left %v", keys)
	}
	fails(t, 1, "passphrase of the certificate store's private key is wrong", "", "whoami", "--url", base, "--store-dir", store3, "--key-passphrase-file", writeSecret(t, "not my passphrase"))
	if who := strings.TrimSpace(ok(t, "", "whoami", "--url", base, "--store-dir", store3, "--key-passphrase-file", keyPass)); who != "alice" {
		t.Fatalf("whoami from the encrypted store printed %q", who)
	}

	ok(t, "", "cert", "revoke", "--data", data, "--serial", certs[0].Serial)
	msg := fails(t, 1, "revoked", "", "whoami", "--url", base, "--store-dir", store2)
	if strings.Contains(msg, "x509:") || strings.Contains(msg, "tls:") {
		t.Errorf("whoami's refusal is not a plain sentence: %q", msg)
	}

	for _, e := range entries {
		ok(t, "", "store", "delete", strings.ToLower(e.Thumbprint), "--store-dir", store1)
	}
	json.Unmarshal([]byte(ok(t, "", "store", "list", "--store-dir", store1, "--json")), &entries)
	if len(entries) != 0 {
		t.Fatalf("stores not empty after deleting all three: %+v", entries)
	}
	fails(t, 1, "", "", "store", "delete", stores["root"].Thumbprint, "--store-dir", store1)
}

// TestStoreCommandsNeedAStore: the commands that read a certificate store
// say there is none (exit 1) instead of showing an empty one, and create
// nothing; only import makes one.
func TestStoreCommandsNeedAStore(t *testing.T) {
	missing := filepath.Join(t.TempDir(), "no-store-here")
	for _, args := range [][]string{
		{"store", "list"},
		{"store", "export", "--out", filepath.Join(t.TempDir(), "x.p12"), "--password-file", writeSecret(t, "a long p12 password")},
		{"store", "delete", "ABCDEF"},
	} {
		fails(t, 1, "there is no certificate store in "+missing, "", append(args, "--store-dir", missing)...)
		if _, err := os.Stat(missing); err == nil {
			t.Fatalf("%v created %s", args, missing)
		}
	}
}
