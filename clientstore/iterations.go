package clientstore

import (
	"encoding/asn1"
	"errors"
)

// maxKDFIterations bounds the key-derivation iteration counts Import will
// run. go-pkcs12 runs whatever count a file states, so a damaged or hostile
// file saying 2^31 would hang the command for hours. Real writers use 1 to
// 100,000 (OpenSSL 2048, Java 10,000, certportal 100,000); a million leaves
// room for stricter tools.
const maxKDFIterations = 1_000_000

// errTooManyIterations reports a count above maxKDFIterations;
// errTooComplex a structure far larger than any real PKCS#12 file.
var (
	errTooManyIterations = errors.New("key derivation iteration count out of range")
	errTooComplex        = errors.New("ASN.1 structure too large")
)

// checkIterations walks the DER of a PKCS#12 file before it is decoded and
// fails if any iteration count it can see is above maxKDFIterations. It
// reads, never writes, PKCS#12: every place a count lives — MacData
// {mac, macSalt, iterations}, pbeParams {salt, iterations}, PBKDF2-params
// {salt, iterationCount, ...} — is a SEQUENCE in which an OCTET STRING salt
// is followed by the INTEGER count, so the walk looks for that shape in
// every SEQUENCE, descending into OCTET STRINGs that hold DER (the
// authenticated safe, its SafeContents and bags). Counts inside encrypted
// content are out of sight, but that content is reached only after the MAC,
// whose count is checked here, has verified.
func checkIterations(der []byte) error {
	budget := 100_000 // nodes; a real file has a few hundred
	return walkDER(der, 0, &budget)
}

func walkDER(der []byte, depth int, budget *int) error {
	if depth > 24 {
		return nil
	}
	for len(der) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(der, &v)
		if err != nil {
			return nil // not DER: nothing to check here; the decoder will refuse it
		}
		der = rest
		if *budget--; *budget < 0 {
			return errTooComplex
		}
		switch {
		case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagSequence && v.IsCompound:
			if err := checkSaltThenCount(v.Bytes); err != nil {
				return err
			}
			if err := walkDER(v.Bytes, depth+1, budget); err != nil {
				return err
			}
		case v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString && !v.IsCompound,
			v.IsCompound:
			if err := walkDER(v.Bytes, depth+1, budget); err != nil {
				return err
			}
		}
	}
	return nil
}

// checkSaltThenCount looks at the direct children of a SEQUENCE and checks
// every INTEGER that follows an OCTET STRING.
func checkSaltThenCount(body []byte) error {
	prevOctets := false
	for len(body) > 0 {
		var v asn1.RawValue
		rest, err := asn1.Unmarshal(body, &v)
		if err != nil {
			return nil
		}
		body = rest
		isInt := v.Class == asn1.ClassUniversal && v.Tag == asn1.TagInteger && !v.IsCompound
		if prevOctets && isInt && !smallCount(v.Bytes) {
			return errTooManyIterations
		}
		prevOctets = v.Class == asn1.ClassUniversal && v.Tag == asn1.TagOctetString && !v.IsCompound
	}
	return nil
}

// smallCount reports whether a DER INTEGER body is in 1..maxKDFIterations
// (zero and negatives are left to the decoder, which refuses them).
func smallCount(b []byte) bool {
	if len(b) == 0 || len(b) > 4 {
		return len(b) == 0
	}
	if b[0]&0x80 != 0 {
		return true
	}
	n := 0
	for _, c := range b {
		n = n<<8 | int(c)
	}
	return n <= maxKDFIterations
}
