package web

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/google/uuid"
	"howett.net/plist"

	"github.com/certportal/certportal"
)

// p12Format is the file a certificate form asks for (the field "format").
type p12Format int

const (
	// formatModern is a PKCS#12 with AES-256 and PBKDF2-SHA256: Windows 10
	// and 11, Linux (NSS, OpenSSL 3), Android, Java.
	formatModern p12Format = iota
	// formatLegacy is a PKCS#12 with 3DES and SHA-1, for the macOS
	// Keychain and older Windows.
	formatLegacy
	// formatApple is an unsigned Apple configuration profile
	// (.mobileconfig) that carries the legacy PKCS#12 and the root, so one
	// tap installs both on an iPhone, iPad or Mac.
	formatApple
)

// legacy says whether the PKCS#12 inside the answer uses the legacy
// algorithms: the Apple profile carries a legacy one, because iOS and the
// macOS Keychain are what cannot read the modern format.
func (f p12Format) legacy() bool { return f != formatModern }

// writeCertificateFile answers a certificate form (POST /certificate and
// the renewals) with the file the form asked for: the PKCS#12 itself, or
// the Apple profile that wraps it.
func (s *Server) writeCertificateFile(w http.ResponseWriter, r *http.Request, f p12Format, id string, p12 []byte) {
	if f != formatApple {
		writeP12(w, id, p12)
		return
	}
	profile, err := s.mobileconfig(id, p12)
	if err != nil {
		// The certificate is issued and recorded; only its wrapping
		// failed. The user can change the sign-in method and try again.
		s.fail(w, r, err)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "application/x-apple-aspen-config")
	h.Set("Cache-Control", "no-store")
	// The ID is limited to A-Z a-z 0-9 . _ @ -, so it needs no escaping.
	h.Set("Content-Disposition", `attachment; filename="`+id+`.mobileconfig"`)
	h.Set("Content-Length", strconv.Itoa(len(profile)))
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write(profile)
}

// appleProfile is the top level of a configuration profile (Apple's
// "Configuration Profile Reference": PayloadType Configuration, version 1).
type appleProfile struct {
	PayloadContent      []applePayload `plist:"PayloadContent"`
	PayloadDescription  string         `plist:"PayloadDescription"`
	PayloadDisplayName  string         `plist:"PayloadDisplayName"`
	PayloadIdentifier   string         `plist:"PayloadIdentifier"`
	PayloadOrganization string         `plist:"PayloadOrganization"`
	PayloadType         string         `plist:"PayloadType"`
	PayloadUUID         string         `plist:"PayloadUUID"`
	PayloadVersion      int            `plist:"PayloadVersion"`
}

// applePayload is one certificate payload of the profile. The PKCS#12
// payload carries no Password key on purpose: the device asks for the
// certificate file's password when the profile is installed, so the
// profile on its own is as safe as the .p12 file.
type applePayload struct {
	PayloadCertificateFileName string `plist:"PayloadCertificateFileName"`
	PayloadContent             []byte `plist:"PayloadContent"`
	PayloadDescription         string `plist:"PayloadDescription"`
	PayloadDisplayName         string `plist:"PayloadDisplayName"`
	PayloadIdentifier          string `plist:"PayloadIdentifier"`
	PayloadType                string `plist:"PayloadType"`
	PayloadUUID                string `plist:"PayloadUUID"`
	PayloadVersion             int    `plist:"PayloadVersion"`
}

// profileIdentifier is the PayloadIdentifier of a user's profile: the same
// for every profile this portal makes for the user, so installing a renewed
// or re-issued certificate replaces the earlier profile (and with it the
// old certificate) instead of piling up next to it. The portal is named by
// its root (a short SHA-256 prefix; the root does not change at an issuing
// CA rollover) and the user by the case-folded ID.
func profileIdentifier(root []byte, id string) string {
	sum := sha256.Sum256(root)
	return "certportal." + hex.EncodeToString(sum[:8]) + ".user." + certportal.IDKey(id)
}

// mobileconfig builds the unsigned configuration profile of format=apple:
// a com.apple.security.pkcs12 payload with the user's legacy PKCS#12 and a
// com.apple.security.root payload with the root's DER. It is unsigned:
// the device shows it as "Unverified", which is what any profile that a
// portal with its own root can make looks like, and the user checks the
// root on the About the certificate page. The UUIDs are random, as Apple
// asks, so each download is a distinct profile with a stable identifier.
func (s *Server) mobileconfig(id string, p12 []byte) ([]byte, error) {
	root := s.Svc.Root()
	rootCN := root.Subject.CommonName
	ident := profileIdentifier(root.Raw, id)
	var uuids [3]string
	for i := range uuids {
		u, err := uuid.NewRandomFromReader(s.rand())
		if err != nil {
			return nil, err
		}
		uuids[i] = strings.ToUpper(u.String()) // as Apple Configurator writes them
	}
	p := appleProfile{
		PayloadContent: []applePayload{{
			PayloadCertificateFileName: id + ".p12",
			PayloadContent:             p12,
			PayloadDescription:         "Your certificate and its private key, for signing in to the portal. The device asks for the certificate file's password.",
			PayloadDisplayName:         id,
			PayloadIdentifier:          ident + ".pkcs12",
			PayloadType:                "com.apple.security.pkcs12",
			PayloadUUID:                uuids[1],
			PayloadVersion:             1,
		}, {
			PayloadCertificateFileName: rootCN + ".cer",
			PayloadContent:             root.Raw,
			PayloadDescription:         "The portal's root certificate " + rootCN + " (serial " + certportal.FormatSerial(root.SerialNumber) + ", SHA-1 thumbprint " + certportal.Thumbprint(root.Raw) + ").",
			PayloadDisplayName:         rootCN,
			PayloadIdentifier:          ident + ".root",
			PayloadType:                "com.apple.security.root",
			PayloadUUID:                uuids[2],
			PayloadVersion:             1,
		}},
		PayloadDescription:  "Installs your certificate for signing in to the certportal service portal, and the portal's root certificate " + rootCN + ".",
		PayloadDisplayName:  "certportal certificate for " + id,
		PayloadIdentifier:   ident,
		PayloadOrganization: "certportal",
		PayloadType:         "Configuration",
		PayloadUUID:         uuids[0],
		PayloadVersion:      1,
	}
	return plist.MarshalIndent(p, plist.XMLFormat, "\t")
}

// rand is the source of the profile's UUIDs: the service's, so tests that
// fix randomness fix these too.
func (s *Server) rand() io.Reader {
	if s.Svc.Rand != nil {
		return s.Svc.Rand
	}
	return rand.Reader
}
