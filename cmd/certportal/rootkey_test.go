package main

import (
	"crypto"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// The root key's custody (SPEC.md "Key custody"), end to end with the
// binary and OpenSSL: serve without the root key, export, the commands
// that take --root-key, the upgrade of a data directory without root.crl.

const rootKeyPass = "correct horse battery staple"

// exportHint is what the start-up line names; it must appear exactly once
// while root.key is in DATA/ca, and not at all once it is gone.
const exportHint = "certportal ca root-key export"

// privateKey parses a PKCS#8 PEM private key.
func privateKey(t *testing.T, data []byte) crypto.PrivateKey {
	t.Helper()
	block, _ := pem.Decode(data)
	if block == nil || block.Type != "PRIVATE KEY" {
		t.Fatalf("no PKCS#8 PEM key in %q", data)
	}
	k, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// decryptRootKeyFile opens an exported root key with age itself, not with
// certportal's parser.
func decryptRootKeyFile(t *testing.T, path, pass string) crypto.PrivateKey {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	id, err := age.NewScryptIdentity(pass)
	if err != nil {
		t.Fatal(err)
	}
	r, err := age.Decrypt(armor.NewReader(f), id)
	if err != nil {
		t.Fatalf("age cannot decrypt %s: %v", path, err)
	}
	b, err := io.ReadAll(io.LimitReader(r, 64<<10))
	if err != nil {
		t.Fatalf("age cannot decrypt %s: %v", path, err)
	}
	return privateKey(t, b)
}

// exportRootKey runs ca root-key export with rootKeyPass and returns the file.
func exportRootKey(t *testing.T, data string) string {
	t.Helper()
	out := filepath.Join(t.TempDir(), "root-key.age")
	ok(t, "", "ca", "root-key", "export", "--data", data, "--out", out, "--passphrase-file", writeSecret(t, rootKeyPass))
	return out
}

// rootCRLOf fetches /crl/root.crl from the plain-HTTP listener and writes
// it as PEM; it returns the file and `openssl crl -text` of it, having
// checked that openssl verifies it against root.crt.
func rootCRLOf(t *testing.T, data, plain, dir string) (string, string) {
	t.Helper()
	der := filepath.Join(dir, "root.crl.der")
	if err := os.WriteFile(der, get(t, &http.Client{Timeout: 10 * time.Second}, plain+"/crl/root.crl"), 0o600); err != nil {
		t.Fatal(err)
	}
	crl := filepath.Join(dir, "root.crl.pem")
	out, err := openssl(t, "crl", "-inform", "DER", "-in", der, "-CAfile", filepath.Join(data, "ca", "root.crt"), "-noout", "-text")
	if err != nil || !strings.Contains(out, "verify OK") {
		t.Fatalf("openssl crl -CAfile root.crt of /crl/root.crl: %v\n%s", err, out)
	}
	if _, err := openssl(t, "crl", "-inform", "DER", "-in", der, "-out", crl); err != nil {
		t.Fatal(err)
	}
	return crl, out
}

// crlDates reads Last Update and Next Update from `openssl crl -text`.
func crlDates(t *testing.T, text string) (last, next time.Time) {
	t.Helper()
	parse := func(field string) time.Time {
		m := regexp.MustCompile(field + `: (.+ GMT)`).FindStringSubmatch(text)
		if m == nil {
			t.Fatalf("no %s in:\n%s", field, text)
		}
		v, err := time.Parse("Jan _2 15:04:05 2006 GMT", strings.TrimSpace(m[1]))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	return parse("Last Update"), parse("Next Update")
}

// TestServeWithoutRootKey: serve names the export command once while
// root.key is in DATA/ca; after `ca root-key export` root.key is gone, the
// file decrypts to the same key, and serve runs without the key: it
// serves the root CRL (verified by openssl, a year long) and a user
// certificate passes `openssl verify -crl_check_all`.
func TestServeWithoutRootKey(t *testing.T) {
	data := newData(t)
	dir := t.TempDir()
	keyPath := filepath.Join(data, "ca", "root.key")
	origKey := privateKey(t, must(os.ReadFile(keyPath)))
	ok(t, "", "user", "add", "--data", data, "--id", "alice", "--email", "alice@example.com")
	p12 := filepath.Join(dir, "alice.p12")
	p12pw := writeSecret(t, "a long pkcs12 password")
	ok(t, "", "cert", "issue", "--data", data, "--id", "alice", "--out", p12, "--password-file", p12pw)

	t.Run("key present", func(t *testing.T) {
		_, _, _, logs := serveProcess(t, data)
		if n := strings.Count(logs.String(), exportHint); n != 1 {
			t.Errorf("with root.key in DATA/ca serve names %q %d times, want once:\n%s", exportHint, n, logs)
		}
	})

	out := filepath.Join(dir, "root-key.age")
	export := func(pass string) result {
		return cli(t, "", "ca", "root-key", "export", "--data", data, "--out", out, "--passphrase-file", writeSecret(t, pass))
	}
	// Refusals change nothing.
	before := snapshot(t, filepath.Join(data, "ca"))
	fails(t, 1, "at least 12", "", "ca", "root-key", "export", "--data", data, "--out", out, "--passphrase-file", writeSecret(t, "only 11 chr"))
	if _, err := os.Stat(out); !os.IsNotExist(err) {
		t.Errorf("a refused export wrote %s", out)
	}
	if err := os.WriteFile(out, []byte("precious"), 0o600); err != nil {
		t.Fatal(err)
	}
	fails(t, 1, "exists", "", "ca", "root-key", "export", "--data", data, "--out", out, "--passphrase-file", writeSecret(t, rootKeyPass))
	if string(must(os.ReadFile(out))) != "precious" {
		t.Error("export overwrote an existing file")
	}
	if after := snapshot(t, filepath.Join(data, "ca")); after != before {
		t.Errorf("refused exports changed DATA/ca:\n%s\nvs\n%s", before, after)
	}
	os.Remove(out)

	if r := export(rootKeyPass); r.code != 0 || !strings.Contains(r.stdout, "ca root-crl") {
		t.Fatalf("ca root-key export: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if _, err := os.Stat(keyPath); !os.IsNotExist(err) {
		t.Fatalf("root.key is still in DATA/ca after the export: %v", err)
	}
	if fi, err := os.Stat(out); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("the exported file: %v %v, want mode 0600", fi, err)
	}
	if k := decryptRootKeyFile(t, out, rootKeyPass); !origKey.(interface{ Equal(crypto.PrivateKey) bool }).Equal(k) {
		t.Fatal("the exported file does not decrypt to the root key")
	}
	fails(t, 1, "exported already", "", "ca", "root-key", "export", "--data", data, "--out", filepath.Join(dir, "again"), "--passphrase-file", writeSecret(t, rootKeyPass))
	if log := ok(t, "", "audit", "--data", data, "--json"); !strings.Contains(log, `"ca.root_key_exported"`) {
		t.Error("the export is not in the audit log")
	}

	metricsAddr := freeAddr(t)
	_, plain, _, logs := serveProcess(t, data, "--metrics-listen", metricsAddr)
	if strings.Contains(logs.String(), exportHint) {
		t.Errorf("serve names %q although root.key is gone:\n%s", exportHint, logs)
	}
	rootCRL, text := rootCRLOf(t, data, plain, dir)
	last, next := crlDates(t, text)
	if d := next.Sub(last); d < 364*24*time.Hour || d > 366*24*time.Hour {
		t.Errorf("the root CRL runs from %v to %v, want about a year", last, next)
	}
	if left := scrape(t, metricsAddr, "certportal_root_crl_expiry_seconds"); left < 364*86400 || left > 365*86400 {
		t.Errorf("certportal_root_crl_expiry_seconds = %v, want about a year", left)
	}

	// A user certificate verifies with every CRL checked: the root's (for
	// SOP-ICA1) and SOP-ICA1's (for the user).
	userPEM := filepath.Join(dir, "alice.pem")
	if o, err := openssl(t, "pkcs12", "-in", p12, "-passin", "file:"+p12pw, "-nokeys", "-clcerts", "-out", userPEM); err != nil {
		t.Fatalf("openssl pkcs12: %v\n%s", err, o)
	}
	issDER := filepath.Join(dir, "issuing.crl.der")
	if err := os.WriteFile(issDER, get(t, &http.Client{Timeout: 10 * time.Second}, plain+"/crl/issuing.crl"), 0o600); err != nil {
		t.Fatal(err)
	}
	issCRL := filepath.Join(dir, "issuing.crl.pem")
	if o, err := openssl(t, "crl", "-inform", "DER", "-in", issDER, "-out", issCRL); err != nil {
		t.Fatalf("openssl crl: %v\n%s", err, o)
	}
	chain := filepath.Join(dir, "chain.pem")
	if err := os.WriteFile(chain, append(must(os.ReadFile(filepath.Join(data, "ca", "root.crt"))), must(os.ReadFile(filepath.Join(data, "ca", "issuing.crt")))...), 0o600); err != nil {
		t.Fatal(err)
	}
	if o, err := openssl(t, "verify", "-crl_check_all", "-CAfile", chain, "-CRLfile", rootCRL, "-CRLfile", issCRL, userPEM); err != nil || !strings.Contains(o, "OK") {
		t.Errorf("openssl verify -crl_check_all with the served CRLs: %v\n%s", err, o)
	}
	// The check is real: without the root CRL the chain does not verify.
	if o, err := openssl(t, "verify", "-crl_check_all", "-CAfile", chain, "-CRLfile", issCRL, userPEM); err == nil || !strings.Contains(o, "unable to get certificate CRL") {
		t.Errorf("openssl verify -crl_check_all without the root CRL passed: %v\n%s", err, o)
	}
}

// TestRootKeyFileSigns: with root.key exported, ca rollover and ca
// root-crl refuse to run without --root-key, with a wrong passphrase or
// with another portal's key, changing nothing in DATA/ca; with the file
// and its passphrase they sign, and the root CRL numbers only grow.
func TestRootKeyFileSigns(t *testing.T) {
	data := newData(t)
	keyFile := exportRootKey(t, data)
	pass, wrong := writeSecret(t, rootKeyPass), writeSecret(t, "not the right passphrase")
	otherData := newData(t)
	otherKey := exportRootKey(t, otherData)
	number := func() int64 {
		var j rootCRLJSON
		if err := json.Unmarshal([]byte(ok(t, "", "ca", "root-crl", "--data", data, "--root-key", keyFile, "--passphrase-file", pass, "--json")), &j); err != nil {
			t.Fatal(err)
		}
		n, err := strconv.ParseInt(j.Number, 10, 64)
		if err != nil {
			t.Fatal(err)
		}
		next, err := time.Parse(time.RFC3339, j.NextUpdate)
		if d := time.Until(next); err != nil || d < 364*24*time.Hour || d > 365*24*time.Hour {
			t.Errorf("ca root-crl: next update %s, want a year from now", j.NextUpdate)
		}
		return n
	}

	caDir := filepath.Join(data, "ca")
	before := snapshot(t, caDir)
	for _, c := range []struct {
		name, want string
		code       int
		args       []string
	}{
		{"rollover without --root-key", "--root-key", 1, []string{"ca", "rollover"}},
		{"root-crl without --root-key", "--root-key", 1, []string{"ca", "root-crl"}},
		{"rollover wrong passphrase", "passphrase of the root key file is wrong", 1, []string{"ca", "rollover", "--root-key", keyFile, "--passphrase-file", wrong}},
		{"root-crl wrong passphrase", "passphrase of the root key file is wrong", 1, []string{"ca", "root-crl", "--root-key", keyFile, "--passphrase-file", wrong}},
		{"rollover another portal's key", "does not belong", 1, []string{"ca", "rollover", "--root-key", otherKey, "--passphrase-file", pass}},
		{"root-crl another portal's key", "does not belong", 1, []string{"ca", "root-crl", "--root-key", otherKey, "--passphrase-file", pass}},
		{"not a key file", "not a root key exported", 1, []string{"ca", "root-crl", "--root-key", filepath.Join(caDir, "root.crt"), "--passphrase-file", pass}},
		{"no passphrase on a pipe", "no passphrase given", 1, []string{"ca", "root-crl", "--root-key", keyFile}},
		{"passphrase without key", "--root-key", 2, []string{"ca", "root-crl", "--passphrase-file", pass}},
	} {
		t.Run(c.name, func(t *testing.T) {
			fails(t, c.code, c.want, "", append(c.args, "--data", data)...)
		})
	}
	if after := snapshot(t, caDir); after != before {
		t.Fatalf("refused commands changed DATA/ca:\n%s\nvs\n%s", before, after)
	}

	first := number()
	out := ok(t, "", "ca", "rollover", "--data", data, "--root-key", keyFile, "--passphrase-file", pass)
	if !strings.Contains(out, "SOP-ICA2") {
		t.Errorf("ca rollover with --root-key: %s", out)
	}
	if _, err := os.Stat(filepath.Join(caDir, "root.key")); !os.IsNotExist(err) {
		t.Errorf("ca rollover with --root-key left a root.key in DATA/ca: %v", err)
	}
	// The rollover signed a root CRL too; the next one is numbered above it.
	if second := number(); second <= first+1 {
		t.Errorf("root CRL numbers %d, then %d after a rollover that signs one, want a gap of at least 2", first, second)
	}
	if o, err := openssl(t, "crl", "-in", filepath.Join(caDir, "root.crl"), "-CAfile", filepath.Join(caDir, "root.crt"), "-noout"); err != nil || !strings.Contains(o, "verify OK") {
		t.Errorf("openssl crl of DATA/ca/root.crl: %v\n%s", err, o)
	}
	if o, err := openssl(t, "verify", "-CAfile", filepath.Join(caDir, "root.crt"), filepath.Join(caDir, "issuing-2.crt")); err != nil {
		t.Errorf("the new issuing CA does not verify under the root: %v\n%s", err, o)
	}
}

// TestServeUpgradesAndRefuses: a data directory from before key custody
// (root.key, no root.crl) gets its root CRL signed once at serve's start;
// one with neither is refused with one sentence naming ca root-crl.
func TestServeUpgradesAndRefuses(t *testing.T) {
	data := newData(t)
	crlPath := filepath.Join(data, "ca", "root.crl")
	if err := os.Remove(crlPath); err != nil {
		t.Fatal(err)
	}
	t.Run("upgrade", func(t *testing.T) {
		_, plain, _, logs := serveProcess(t, data)
		if !strings.Contains(logs.String(), "signed the root CRL once") {
			t.Errorf("serve did not say it signed the root CRL:\n%s", logs)
		}
		rootCRLOf(t, data, plain, t.TempDir())
	})
	if _, err := os.Stat(crlPath); err != nil {
		t.Fatalf("serve did not write root.crl: %v", err)
	}

	exportRootKey(t, data)
	if err := os.Remove(crlPath); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(binary, "serve", "--data", data, "--listen", freeAddr(t), "--http-listen", freeAddr(t))
	outb, err := cmd.CombinedOutput()
	ee, isExit := err.(*exec.ExitError)
	if !isExit || ee.ExitCode() != 1 {
		t.Fatalf("serve without root.crl and root key: %v, want exit 1\n%s", err, outb)
	}
	lines := strings.Split(strings.TrimSpace(string(outb)), "\n")
	if last := lines[len(lines)-1]; !strings.HasPrefix(last, "certportal: ") || !strings.Contains(last, "ca root-crl") || !strings.Contains(last, "root.crl is missing") {
		t.Errorf("serve's refusal: %q", last)
	}
}

// TestRootCRLDaysAndWarning: root_crl_days sets the root CRL's lifetime;
// thirty days before its end serve warns and /metrics shows the time left.
func TestRootCRLDaysAndWarning(t *testing.T) {
	data := newData(t)
	p := filepath.Join(data, "config.json")
	var cfg map[string]any
	if err := json.Unmarshal(must(os.ReadFile(p)), &cfg); err != nil {
		t.Fatal(err)
	}
	if cfg["root_crl_days"] != float64(365) {
		t.Errorf("init wrote root_crl_days %v, want 365", cfg["root_crl_days"])
	}
	setRootCRLDays := func(days int) {
		cfg["root_crl_days"] = days
		if err := os.WriteFile(p, must(json.Marshal(cfg)), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	setRootCRLDays(0)
	before := snapshot(t, filepath.Join(data, "ca"))
	fails(t, 1, "root_crl_days", "", "ca", "root-crl", "--data", data)
	if after := snapshot(t, filepath.Join(data, "ca")); after != before {
		t.Error("a refused ca root-crl changed DATA/ca")
	}

	setRootCRLDays(10)
	ok(t, "", "ca", "root-crl", "--data", data)
	metricsAddr := freeAddr(t)
	_, plain, _, logs := serveProcess(t, data, "--metrics-listen", metricsAddr)
	if !strings.Contains(logs.String(), "the root CRL expires soon") || !strings.Contains(logs.String(), "ca root-crl") {
		t.Errorf("serve does not warn of a root CRL that ends in 10 days:\n%s", logs)
	}
	if left := scrape(t, metricsAddr, "certportal_root_crl_expiry_seconds"); left < 9*86400 || left > 10*86400 {
		t.Errorf("certportal_root_crl_expiry_seconds = %v, want just under 10 days", left)
	}
	_, text := rootCRLOf(t, data, plain, t.TempDir())
	if last, next := crlDates(t, text); next.Sub(last) != 10*24*time.Hour {
		t.Errorf("with root_crl_days 10 the root CRL runs %v", next.Sub(last))
	}

	// Re-signed while serve runs: served at once, and the gauge reads the
	// new file at the next scrape.
	setRootCRLDays(365)
	ok(t, "", "ca", "root-crl", "--data", data)
	if left := scrape(t, metricsAddr, "certportal_root_crl_expiry_seconds"); left < 364*86400 {
		t.Errorf("after ca root-crl the gauge still says %v seconds", left)
	}
	_, text = rootCRLOf(t, data, plain, t.TempDir())
	if last, next := crlDates(t, text); next.Sub(last) != 365*24*time.Hour {
		t.Errorf("the running portal still serves the old root CRL (%v long)", next.Sub(last))
	}
}

// TestDemoStillServes: demo (init with the root key in DATA/ca, a user,
// serve) starts, serves the root CRL, and names the export command once.
func TestDemoStillServes(t *testing.T) {
	data := filepath.Join(t.TempDir(), "demo")
	addr, plain := freeAddr(t), freeAddr(t)
	cmd := exec.Command(binary, "demo", "--data", data, "--listen", addr, "--http-listen", plain)
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(os.Interrupt)
		if err := cmd.Wait(); err != nil {
			t.Errorf("demo did not stop cleanly: %v\n%s", err, logs)
		}
	}()
	for i := 0; ; i++ {
		if strings.Contains(logs.String(), "certportal demo is running") {
			break
		}
		if i == 300 {
			t.Fatalf("demo did not start:\n%s", logs)
		}
		time.Sleep(100 * time.Millisecond)
	}
	rootCRLOf(t, data, "http://"+plain, t.TempDir())
	if n := strings.Count(logs.String(), exportHint); n != 1 {
		t.Errorf("demo names %q %d times, want once:\n%s", exportHint, n, logs)
	}
}
