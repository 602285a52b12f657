package clientstore

import (
	"bytes"
	"crypto/hmac"
	"crypto/pbkdf2"
	"crypto/sha256"
	"encoding/asn1"
	"errors"
	"fmt"
	"slices"

	pkcs12 "software.sslmate.com/src/go-pkcs12"
)

// go-pkcs12 decodes DER only, and its errors tell "the MAC does not match"
// from other failures but not "wrong password" from "damaged file". This
// file reads the outer PKCS#12 structure itself (RFC 7292: PFX, the
// authenticated safe, its ContentInfos), so that
//
//   - files in BER (NSS writes indefinite lengths and OCTET STRINGs in
//     pieces) are brought to DER before go-pkcs12 sees them, with the
//     file's own MAC still checked over the bytes it was computed on;
//   - a file whose structure does not parse is reported as damaged before
//     any password is tried;
//   - when the MAC fails, the password is tried on each encrypted part by
//     itself: if any part opens, the password is right and the file is
//     damaged; if none does, the password is wrong.

var (
	oidPKCS7Data          = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 1}
	oidPKCS7SignedData    = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 2}
	oidPKCS7EnvelopedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 3}
	oidPKCS7EncryptedData = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 7, 6}
	oidKeyBag             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 1}
	oidShroudedKeyBag     = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 2}
	oidCertBag            = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 12, 10, 1, 3}
	oidPBMAC1             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 14}
	oidPBKDF2             = asn1.ObjectIdentifier{1, 2, 840, 113549, 1, 5, 12}
	oidHMACWithSHA256     = asn1.ObjectIdentifier{1, 2, 840, 113549, 2, 9}
)

type pfxPDU struct {
	Version  int
	AuthSafe pfxContentInfo
	MacData  asn1.RawValue `asn1:"optional"`
}

type pfxContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Content     asn1.RawValue `asn1:"tag:0,explicit,optional"`
}

type pfxEncryptedData struct {
	Version int
	Info    pfxEncryptedContentInfo
}

type pfxEncryptedContentInfo struct {
	ContentType asn1.ObjectIdentifier
	Algorithm   asn1.RawValue
	Content     asn1.RawValue `asn1:"tag:0,optional"`
}

type pfxSafeBag struct {
	ID         asn1.ObjectIdentifier
	Value      asn1.RawValue `asn1:"tag:0,explicit"`
	Attributes asn1.RawValue `asn1:"optional"`
}

// pfxFile is a PKCS#12 file read as far as it can be without a password.
type pfxFile struct {
	authSafe []byte           // the authenticated safe as the file has it: what its MAC covers
	safes    []pfxContentInfo // the authenticated safe's ContentInfos, in DER
	macData  []byte           // DER MacData; nil when the file has none
	changed  bool             // the file's authenticated safe is not DER as go-pkcs12 reads it
}

// errStructure reports a PKCS#12 file whose structure does not parse.
var errStructure = errors.New("PKCS#12 structure does not parse")

// parsePFX reads the structure of a PKCS#12 file in BER or DER.
func parsePFX(b []byte) (*pfxFile, error) {
	der, err := berToDER(b)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStructure, err)
	}
	var pdu pfxPDU
	if err := strictUnmarshal(der, &pdu); err != nil {
		return nil, err
	}
	// Version 3 is the only one ever written (RFC 7292), and the content
	// type is data for password integrity or signedData for public-key
	// integrity, which no browser or tool exports: anything else is damage.
	switch {
	case pdu.Version != 3:
		return nil, fmt.Errorf("%w: PFX version %d", errStructure, pdu.Version)
	case pdu.AuthSafe.ContentType.Equal(oidPKCS7SignedData):
		return nil, pkcs12.NotImplementedError("only password-protected PFX is implemented")
	case !pdu.AuthSafe.ContentType.Equal(oidPKCS7Data):
		return nil, fmt.Errorf("%w: authenticated safe of type %v", errStructure, pdu.AuthSafe.ContentType)
	}
	if err := checkMACAlgorithm(pdu.MacData); err != nil {
		return nil, err
	}
	auth, err := explicitOctets(pdu.AuthSafe.Content)
	if err != nil {
		return nil, err
	}
	f := &pfxFile{authSafe: auth, macData: pdu.MacData.FullBytes}
	authDER, err := berToDER(f.authSafe)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStructure, err)
	}
	if err := strictUnmarshal(authDER, &f.safes); err != nil {
		return nil, err
	}
	for i := range f.safes {
		if err := normaliseSafe(&f.safes[i]); err != nil {
			return nil, err
		}
	}
	norm, err := asn1.Marshal(f.safes)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", errStructure, err)
	}
	f.changed = !bytes.Equal(norm, f.authSafe)
	return f, nil
}

// normaliseSafe brings one ContentInfo of the authenticated safe to DER:
// plain SafeContents are re-encoded and checked to be a list of bags; an
// EncryptedData's content sent in pieces is joined.
func normaliseSafe(ci *pfxContentInfo) error {
	switch {
	case ci.ContentType.Equal(oidPKCS7Data):
		octets, err := explicitOctets(ci.Content)
		if err != nil {
			return err
		}
		inner, err := berToDER(octets)
		if err != nil {
			return fmt.Errorf("%w: %w", errStructure, err)
		}
		var bags []pfxSafeBag
		if err := strictUnmarshal(inner, &bags); err != nil {
			return err
		}
		ci.Content = explicit0(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagOctetString, Bytes: inner})
	case ci.ContentType.Equal(oidPKCS7EnvelopedData):
		return pkcs12.NotImplementedError("only data and encryptedData content types are supported in authenticated safe")
	case ci.ContentType.Equal(oidPKCS7EncryptedData):
		var ed pfxEncryptedData
		if err := strictUnmarshal(ci.Content.Bytes, &ed); err != nil {
			return err
		}
		if c := ed.Info.Content; c.IsCompound {
			joined, err := joinOctets(c.Bytes)
			if err != nil {
				return fmt.Errorf("%w: %w", errStructure, err)
			}
			ed.Info.Content = asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, Bytes: joined}
		}
		der, err := asn1.Marshal(ed)
		if err != nil {
			return fmt.Errorf("%w: %w", errStructure, err)
		}
		ci.Content = explicit0(asn1.RawValue{FullBytes: der})
	default:
		return fmt.Errorf("%w: SafeContents of type %v", errStructure, ci.ContentType)
	}
	return nil
}

// macDigests are the MAC algorithms PKCS#12 writers use: MD5 and the SHA
// family for the RFC 7292 MAC, and PBMAC1 (RFC 9579).
var macDigests = []asn1.ObjectIdentifier{
	{1, 2, 840, 113549, 2, 5},        // MD5
	{1, 3, 14, 3, 2, 26},             // SHA-1
	{2, 16, 840, 1, 101, 3, 4, 2, 1}, // SHA-256
	{2, 16, 840, 1, 101, 3, 4, 2, 2}, // SHA-384
	{2, 16, 840, 1, 101, 3, 4, 2, 3}, // SHA-512
	{2, 16, 840, 1, 101, 3, 4, 2, 4}, // SHA-224
	{2, 16, 840, 1, 101, 3, 4, 2, 5}, // SHA-512/224
	{2, 16, 840, 1, 101, 3, 4, 2, 6}, // SHA-512/256
	{1, 2, 840, 113549, 1, 5, 14},    // PBMAC1
}

// checkMACAlgorithm parses MacData and checks that its algorithm is one a
// writer uses, so that a damaged one is not reported as a form certportal
// cannot read (go-pkcs12 reads SHA-1, SHA-256, SHA-512 and PBMAC1; the
// others it refuses as not implemented).
func checkMACAlgorithm(macData asn1.RawValue) error {
	if len(macData.FullBytes) == 0 {
		return nil
	}
	var md struct {
		MAC struct {
			Algorithm struct {
				Algorithm  asn1.ObjectIdentifier
				Parameters asn1.RawValue `asn1:"optional"`
			}
			Digest []byte
		}
		Salt       []byte
		Iterations int `asn1:"optional,default:1"`
	}
	if err := strictUnmarshal(macData.FullBytes, &md); err != nil {
		return err
	}
	alg := md.MAC.Algorithm
	if !slices.ContainsFunc(macDigests, alg.Algorithm.Equal) {
		return fmt.Errorf("%w: MAC algorithm %v", errStructure, alg.Algorithm)
	}
	// A digest takes no parameters (absent or NULL); only PBMAC1 has some.
	params := alg.Parameters.FullBytes
	if !alg.Algorithm.Equal(oidPBMAC1) && len(params) != 0 && !bytes.Equal(params, []byte{0x05, 0x00}) {
		return fmt.Errorf("%w: MAC digest with parameters", errStructure)
	}
	return nil
}

// strictUnmarshal is asn1.Unmarshal that refuses trailing bytes and marks
// every failure as errStructure.
func strictUnmarshal(der []byte, v any) error {
	rest, err := asn1.Unmarshal(der, v)
	if err != nil {
		return fmt.Errorf("%w: %w", errStructure, err)
	}
	if len(rest) != 0 {
		return fmt.Errorf("%w: trailing data", errStructure)
	}
	return nil
}

// explicitOctets returns the contents of the OCTET STRING inside a
// ContentInfo's [0] EXPLICIT content.
func explicitOctets(content asn1.RawValue) ([]byte, error) {
	var v asn1.RawValue
	if err := strictUnmarshal(content.Bytes, &v); err != nil {
		return nil, err
	}
	if v.Class != asn1.ClassUniversal || v.Tag != asn1.TagOctetString || v.IsCompound {
		return nil, fmt.Errorf("%w: content is not an OCTET STRING", errStructure)
	}
	return v.Bytes, nil
}

// explicit0 wraps inner as a ContentInfo's [0] EXPLICIT content.
func explicit0(inner asn1.RawValue) asn1.RawValue {
	return asn1.RawValue{Class: asn1.ClassContextSpecific, Tag: 0, IsCompound: true, Bytes: mustMarshal(inner)}
}

// encode writes a DER PFX with the given authenticated safe and MacData.
func encodePFX(authSafe, macData []byte) []byte {
	pdu := pfxPDU{
		Version: 3,
		AuthSafe: pfxContentInfo{
			ContentType: oidPKCS7Data,
			Content:     explicit0(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagOctetString, Bytes: authSafe}),
		},
	}
	if len(macData) > 0 {
		pdu.MacData = asn1.RawValue{FullBytes: macData}
	}
	der, err := asn1.Marshal(pdu)
	if err != nil {
		panic("clientstore: encoding a PFX: " + err.Error()) // only RawValues and an OID: cannot fail
	}
	return der
}

// normalised returns the file in DER with its own MacData, for
// checkIterations and, when nothing changed, for go-pkcs12 itself.
func (f *pfxFile) normalised() []byte {
	return encodePFX(mustMarshal(f.safes), f.macData)
}

// remac returns safes as a DER PFX whose MAC is computed afresh with
// password, so go-pkcs12 decodes it. It is used only after the file's own
// MAC was checked over the file's own bytes (or to try the password on a
// part of the file), and never leaves this process; one PBKDF2 iteration
// and a fixed salt are enough for that.
func remac(safes []pfxContentInfo, password string) []byte {
	auth := mustMarshal(safes)
	salt := make([]byte, 16)
	key, err := pbkdf2.Key(sha256.New, password, salt, 1, 32)
	if err != nil {
		panic("clientstore: PBKDF2: " + err.Error()) // SHA-256 and 32 bytes: cannot fail
	}
	m := hmac.New(sha256.New, key)
	m.Write(auth)
	type algorithm struct {
		Algorithm  asn1.ObjectIdentifier
		Parameters asn1.RawValue `asn1:"optional"`
	}
	null := asn1.RawValue{Tag: asn1.TagNull}
	kdf := struct {
		Salt       []byte
		Iterations int
		KeyLength  int
		PRF        algorithm
	}{salt, 1, 32, algorithm{oidHMACWithSHA256, null}}
	params := struct {
		KDF algorithm
		MAC algorithm
	}{algorithm{oidPBKDF2, asn1.RawValue{FullBytes: mustMarshal(kdf)}}, algorithm{oidHMACWithSHA256, null}}
	macData := struct {
		MAC struct {
			Algorithm algorithm
			Digest    []byte
		}
		Salt       []byte
		Iterations int
	}{Salt: salt, Iterations: 1}
	macData.MAC.Algorithm = algorithm{oidPBMAC1, asn1.RawValue{FullBytes: mustMarshal(params)}}
	macData.MAC.Digest = m.Sum(nil)
	return encodePFX(auth, mustMarshal(macData))
}

func mustMarshal(v any) []byte {
	der, err := asn1.Marshal(v)
	if err != nil {
		panic("clientstore: encoding PKCS#12: " + err.Error()) // values built here: cannot fail
	}
	return der
}

// emptySafe is a plain ContentInfo with no bags: go-pkcs12's ToPEM wants
// exactly two ContentInfos, so a part tried alone gets this one beside it.
var emptySafe = pfxContentInfo{
	ContentType: oidPKCS7Data,
	Content:     explicit0(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagOctetString, Bytes: []byte{0x30, 0x00}}),
}

// encryptedParts lists each part of the file that needs the password, as
// a two-ContentInfo authenticated safe of its own: every EncryptedData,
// and every shrouded key bag (without its attributes) of the plain
// SafeContents.
func (f *pfxFile) encryptedParts() [][]pfxContentInfo {
	var parts [][]pfxContentInfo
	for _, ci := range f.safes {
		switch {
		case ci.ContentType.Equal(oidPKCS7EncryptedData):
			parts = append(parts, []pfxContentInfo{ci, emptySafe})
		case ci.ContentType.Equal(oidPKCS7Data):
			var bags []pfxSafeBag
			octets, err := explicitOctets(ci.Content)
			if err != nil || strictUnmarshal(octets, &bags) != nil {
				continue // parsePFX checked this; nothing to try
			}
			for _, bag := range bags {
				if !bag.ID.Equal(oidShroudedKeyBag) {
					continue
				}
				one := []pfxSafeBag{{ID: bag.ID, Value: bag.Value}}
				parts = append(parts, []pfxContentInfo{{
					ContentType: oidPKCS7Data,
					Content:     explicit0(asn1.RawValue{Class: asn1.ClassUniversal, Tag: asn1.TagOctetString, Bytes: mustMarshal(one)}),
				}, emptySafe})
			}
		}
	}
	return parts
}

// countBags counts the file's private keys and certificates (its MAC
// already checked, so password is right), to say what is missing when
// go-pkcs12 refuses a file that decrypts: plain bags by their type, each
// EncryptedData by decrypting it alone. ok is false when some part cannot
// be read that way.
func (f *pfxFile) countBags(password string) (keys, certs int, ok bool) {
	for _, ci := range f.safes {
		switch {
		case ci.ContentType.Equal(oidPKCS7EncryptedData):
			der := remac([]pfxContentInfo{ci, emptySafe}, password)
			if blocks, err := pkcs12.ToPEM(der, password); err == nil {
				for _, b := range blocks {
					switch b.Type {
					case "PRIVATE KEY":
						keys++
					case "CERTIFICATE":
						certs++
					}
				}
			} else if trusted, err := pkcs12.DecodeTrustStore(remac([]pfxContentInfo{ci}, password), password); err == nil {
				certs += len(trusted) // Java's trust-store bags carry an attribute ToPEM refuses
			} else {
				return 0, 0, false
			}
		case ci.ContentType.Equal(oidPKCS7Data):
			var bags []pfxSafeBag
			octets, err := explicitOctets(ci.Content)
			if err != nil || strictUnmarshal(octets, &bags) != nil {
				return 0, 0, false
			}
			for _, bag := range bags {
				switch {
				case bag.ID.Equal(oidKeyBag), bag.ID.Equal(oidShroudedKeyBag):
					keys++
				case bag.ID.Equal(oidCertBag):
					certs++
				}
			}
		default:
			return 0, 0, false
		}
	}
	return keys, certs, true
}
