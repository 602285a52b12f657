package web_test

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/certportal/certportal"
)

// appleProfile is a .mobileconfig as Python's plistlib reads it (see
// readProfile): data values come back as {"data": base64}.
type appleProfile struct {
	PayloadType        string
	PayloadVersion     int
	PayloadIdentifier  string
	PayloadUUID        string
	PayloadDisplayName string
	PayloadContent     []applePayload
}

type applePayload struct {
	PayloadType                string
	PayloadVersion             int
	PayloadIdentifier          string
	PayloadUUID                string
	PayloadDisplayName         string
	PayloadCertificateFileName string
	PayloadContent             struct {
		Data []byte `json:"data"`
	}
	// Keys is every key of the payload, to see that no Password is there.
	Keys []string `json:"-"`
}

// plistToJSON is run by python3: it parses the profile with plistlib,
// insisting on the XML format, and prints it as JSON with data values as
// {"data": base64} and each dict's keys listed under "_keys".
const plistToJSON = `
import base64, json, plistlib, sys
with open(sys.argv[1], "rb") as f:
    p = plistlib.load(f, fmt=plistlib.FMT_XML)
def conv(v):
    if isinstance(v, bytes):
        return {"data": base64.b64encode(v).decode()}
    if isinstance(v, dict):
        out = {k: conv(x) for k, x in v.items()}
        out["_keys"] = sorted(v.keys())
        return out
    if isinstance(v, list):
        return [conv(x) for x in v]
    return v
json.dump(conv(p), sys.stdout)
`

// readProfile parses a .mobileconfig with Python's plistlib, which is what
// makes it an independent check of the XML we write.
func readProfile(t *testing.T, profile []byte) appleProfile {
	t.Helper()
	py := need(t, "python3")
	f := filepath.Join(t.TempDir(), "profile.mobileconfig")
	if err := os.WriteFile(f, profile, 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(py, "-c", plistToJSON, f).Output()
	if err != nil {
		t.Fatalf("plistlib cannot read the profile: %v\n%s", err, profile)
	}
	var p appleProfile
	if err := json.Unmarshal(out, &p); err != nil {
		t.Fatalf("the profile as plistlib read it does not have the expected types: %v\n%s", err, out)
	}
	var keys struct {
		PayloadContent []struct {
			Keys []string `json:"_keys"`
		}
	}
	if err := json.Unmarshal(out, &keys); err != nil || len(keys.PayloadContent) != len(p.PayloadContent) {
		t.Fatalf("reading the payloads' keys: %v", err)
	}
	for i := range p.PayloadContent {
		p.PayloadContent[i].Keys = keys.PayloadContent[i].Keys
	}
	return p
}

var uuidForm = regexp.MustCompile(`^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-4[0-9A-Fa-f]{3}-[89ABab][0-9A-Fa-f]{3}-[0-9A-Fa-f]{12}$`)

// checkProfile checks a downloaded format=apple answer and returns the
// parsed profile and its PKCS#12.
func (e *env) checkProfile(r *response, id string) (appleProfile, []byte) {
	t := e.t
	t.Helper()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("format=apple: status %d:\n%.400s", r.StatusCode, r.body)
	}
	for h, want := range map[string]string{
		"Content-Type":        "application/x-apple-aspen-config",
		"Cache-Control":       "no-store",
		"Content-Disposition": `attachment; filename="` + id + `.mobileconfig"`,
	} {
		if got := r.Header.Get(h); got != want {
			t.Errorf("format=apple: %s = %q, want %q", h, got, want)
		}
	}
	if strings.Contains(r.body, p12Password) {
		t.Errorf("the profile carries the certificate file's password")
	}
	p := readProfile(t, []byte(r.body))
	if p.PayloadType != "Configuration" || p.PayloadVersion != 1 || p.PayloadDisplayName != "certportal certificate for "+id || p.PayloadIdentifier == "" {
		t.Errorf("profile: type %q version %d name %q identifier %q", p.PayloadType, p.PayloadVersion, p.PayloadDisplayName, p.PayloadIdentifier)
	}
	if len(p.PayloadContent) != 2 {
		t.Fatalf("the profile has %d payloads, want the PKCS#12 and the root", len(p.PayloadContent))
	}
	uuids := map[string]bool{p.PayloadUUID: true}
	var p12, root []byte
	for _, pl := range p.PayloadContent {
		uuids[pl.PayloadUUID] = true
		if !uuidForm.MatchString(pl.PayloadUUID) || pl.PayloadVersion != 1 || !strings.HasPrefix(pl.PayloadIdentifier, p.PayloadIdentifier+".") {
			t.Errorf("payload %s: UUID %q version %d identifier %q", pl.PayloadType, pl.PayloadUUID, pl.PayloadVersion, pl.PayloadIdentifier)
		}
		for _, k := range pl.Keys {
			if k == "Password" {
				t.Errorf("payload %s carries a Password: the device must ask for it", pl.PayloadType)
			}
		}
		switch pl.PayloadType {
		case "com.apple.security.pkcs12":
			p12 = pl.PayloadContent.Data
		case "com.apple.security.root":
			root = pl.PayloadContent.Data
		default:
			t.Errorf("unexpected payload type %q", pl.PayloadType)
		}
	}
	if !uuidForm.MatchString(p.PayloadUUID) || len(uuids) != 3 {
		t.Errorf("the profile's UUIDs are not three distinct random UUIDs: %v", uuids)
	}
	if !bytes.Equal(root, e.pki.Root.Raw) {
		t.Errorf("the root payload is not SOP-RCA's DER (%d bytes)", len(root))
	}
	if len(p12) == 0 {
		t.Fatal("the profile has no PKCS#12 payload")
	}
	return p, p12
}

// checkLegacyP12 opens a PKCS#12 with openssl -legacy and the password,
// and checks that it is the legacy format (3DES) and holds id's
// certificate and key; a wrong password must fail.
func checkLegacyP12(t *testing.T, p12 []byte, id string) {
	t.Helper()
	need(t, "openssl")
	dir := t.TempDir()
	f, pw, bad := filepath.Join(dir, id+".p12"), filepath.Join(dir, "pw"), filepath.Join(dir, "bad")
	for name, b := range map[string][]byte{f: p12, pw: []byte(p12Password + "\n"), bad: []byte("not the password\n")} {
		if err := os.WriteFile(name, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	out, err := run(t, "openssl", "pkcs12", "-legacy", "-info", "-in", f, "-passin", "file:"+pw, "-nodes")
	if err != nil {
		t.Fatalf("openssl pkcs12 -legacy cannot open the profile's PKCS#12: %v\n%s", err, out)
	}
	for _, want := range []string{"pbeWithSHA1And3-KeyTripleDES-CBC", "CN = " + id, "BEGIN PRIVATE KEY", "CN = SOP-RCA"} {
		if !strings.Contains(out, want) {
			t.Errorf("openssl pkcs12 -info output lacks %q:\n%s", want, out)
		}
	}
	if out, err := run(t, "openssl", "pkcs12", "-legacy", "-in", f, "-passin", "file:"+bad, "-nodes"); err == nil {
		t.Errorf("openssl opened the PKCS#12 with a wrong password:\n%s", out)
	}
}

// TestCheckAppleProfile: format=apple on POST /certificate and on the
// renewal answers with a .mobileconfig that plistlib reads, whose PKCS#12
// payload is the legacy file (openssl opens it with the password) holding a
// certificate that signs in, and whose root payload is SOP-RCA. A renewed
// profile keeps the identifier (so it replaces the old one on the device)
// and gets new UUIDs.
func TestCheckAppleProfile(t *testing.T) {
	e := newEnv(t)
	e.addUser("ann.lee@corp", "ann@example.com", "ann password 12")
	pwc := e.client(nil)
	e.login(pwc, "ann.lee@corp", "ann password 12")
	home := e.get(pwc, "/")
	for _, want := range []string{`value="modern" checked`, `value="legacy"`, `value="apple"`, "iPhone, iPad and Mac", "Windows 10 and 11, Linux and Android"} {
		if !strings.Contains(home.body, want) {
			t.Errorf("the certificate form lacks %q", want)
		}
	}

	form := url.Values{"p12_password": {p12Password}, "p12_password_confirm": {p12Password}, "format": {"apple"}}
	r := e.post(pwc, "/certificate", form)
	first, p12 := e.checkProfile(r, "ann.lee@corp")
	checkLegacyP12(t, p12, "ann.lee@corp")
	cert, _ := decodeP12(t, p12, p12Password)
	if got := e.get(e.client(cert), "/"); got.StatusCode != http.StatusOK || !strings.Contains(got.body, "ann.lee@corp") {
		t.Fatalf("sign-in with the profile's certificate: %d", got.StatusCode)
	}
	if m := e.account("ann.lee@corp").Method; m != certportal.MethodCertificate {
		t.Errorf("method after an apple download = %s, want certificate", m)
	}

	// Renewal in the last days, from the certificate's own session.
	e.pki.Clock.Set(cert.Leaf.NotAfter.Add(-10 * 24 * time.Hour))
	browser := e.client(cert)
	if got := e.get(browser, "/"); got.StatusCode != http.StatusOK || !strings.Contains(got.body, `value="apple"`) {
		t.Fatalf("the renewal form lacks the apple format: %d", got.StatusCode)
	}
	r = e.post(browser, "/certificate/renew", form)
	second, p12 := e.checkProfile(r, "ann.lee@corp")
	checkLegacyP12(t, p12, "ann.lee@corp")
	renewed, _ := decodeP12(t, p12, p12Password)
	for _, c := range e.certificates("ann.lee@corp") {
		if c.IsRevoked() != (c.Serial != certportal.FormatSerial(renewed.Leaf.SerialNumber)) {
			t.Errorf("after renewal, certificate %s revoked = %v; want only the profile's new one valid", c.Serial, c.IsRevoked())
		}
	}
	if second.PayloadIdentifier != first.PayloadIdentifier {
		t.Errorf("PayloadIdentifier changed at renewal: %q, then %q", first.PayloadIdentifier, second.PayloadIdentifier)
	}
	if second.PayloadUUID == first.PayloadUUID {
		t.Errorf("the renewed profile reuses the PayloadUUID %s", first.PayloadUUID)
	}

	// Another user of the same portal gets another identifier.
	e.addUser("bo", "bo@example.com", "bo password 123")
	bo := e.client(nil)
	e.login(bo, "bo", "bo password 123")
	other, _ := e.checkProfile(e.post(bo, "/certificate", form), "bo")
	if other.PayloadIdentifier == first.PayloadIdentifier {
		t.Errorf("two users share the PayloadIdentifier %q", other.PayloadIdentifier)
	}
}
