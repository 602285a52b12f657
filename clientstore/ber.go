package clientstore

import (
	"errors"
)

// BER (X.690) lets a writer stream: a length may be left open
// ("indefinite", closed by two zero bytes) and an OCTET STRING may be sent
// in pieces. NSS (Firefox, Chromium on Linux, pk12util) writes PKCS#12
// files that way; encoding/asn1, and so go-pkcs12, reads only definite
// lengths. berToDER rewrites such an encoding in the form they read.
//
// No maintained Go library exports this: the converters in the PKCS#7
// packages (smallstep/pkcs7's ber2der among them) are unexported, so this
// small one is ours, and FuzzBERToDER checks it.

// maxBERDepth bounds nesting: a PKCS#12 file nests about ten deep, and a
// bound keeps a hostile file from exhausting the stack.
const maxBERDepth = 32

var (
	errBERTruncated = errors.New("ber: truncated element")
	errBERTrailing  = errors.New("ber: trailing data after the element")
	errBERTooDeep   = errors.New("ber: elements nested too deeply")
	errBERSyntax    = errors.New("ber: malformed element")
)

// berToDER re-encodes one BER element, and everything inside it, with
// definite lengths in their shortest form; a constructed OCTET STRING
// becomes one primitive OCTET STRING holding its pieces joined. The
// contents of primitive elements are left as they are (an OCTET STRING
// that holds BER stays BER inside), because PKCS#12 computes its MAC over
// those bytes. Bytes after the element are an error.
func berToDER(ber []byte) ([]byte, error) {
	out, rest, err := appendDER(nil, ber, 0)
	if err != nil {
		return nil, err
	}
	if len(rest) != 0 {
		return nil, errBERTrailing
	}
	return out, nil
}

// appendDER converts the element at the start of b, appends it to out, and
// returns what follows it.
func appendDER(out, b []byte, depth int) ([]byte, []byte, error) {
	if depth > maxBERDepth {
		return nil, nil, errBERTooDeep
	}
	ident, constructed, b, err := readIdentifier(b)
	if err != nil {
		return nil, nil, err
	}
	length, indefinite, b, err := readLength(b)
	if err != nil {
		return nil, nil, err
	}
	if !constructed {
		if indefinite {
			return nil, nil, errBERSyntax // only constructed elements may be open-ended
		}
		return appendTLV(out, ident, b[:length]), b[length:], nil
	}
	body, rest := b, []byte(nil)
	if !indefinite {
		body, rest = b[:length], b[length:]
	}
	var inner []byte
	for {
		if indefinite {
			if len(body) >= 2 && body[0] == 0 && body[1] == 0 {
				rest = body[2:]
				break
			}
			if len(body) == 0 {
				return nil, nil, errBERTruncated // no end-of-contents
			}
		} else if len(body) == 0 {
			break
		}
		inner, body, err = appendDER(inner, body, depth+1)
		if err != nil {
			return nil, nil, err
		}
	}
	if len(ident) == 1 && ident[0] == 0x24 { // constructed universal OCTET STRING
		joined, err := joinOctets(inner)
		if err != nil {
			return nil, nil, err
		}
		return appendTLV(out, []byte{0x04}, joined), rest, nil
	}
	return appendTLV(out, ident, inner), rest, nil
}

// joinOctets concatenates the contents of a run of DER primitive OCTET
// STRINGs: the pieces of a constructed OCTET STRING, already converted.
func joinOctets(der []byte) ([]byte, error) {
	joined := []byte{}
	for len(der) > 0 {
		ident, constructed, b, err := readIdentifier(der)
		if err != nil {
			return nil, err
		}
		if constructed || len(ident) != 1 || ident[0] != 0x04 {
			return nil, errBERSyntax // a piece of an OCTET STRING must be an OCTET STRING
		}
		n, _, b, err := readLength(b)
		if err != nil {
			return nil, err
		}
		joined = append(joined, b[:n]...)
		der = b[n:]
	}
	return joined, nil
}

// readIdentifier reads the identifier octets (class, constructed bit, tag
// number in the low or high form).
func readIdentifier(b []byte) (ident []byte, constructed bool, rest []byte, err error) {
	if len(b) == 0 {
		return nil, false, nil, errBERTruncated
	}
	if b[0] == 0 {
		return nil, false, nil, errBERSyntax // end-of-contents where an element belongs
	}
	n := 1
	if b[0]&0x1f == 0x1f {
		// High tag number: base 128, shortest form, and not one that fits
		// in the first octet (X.690 8.1.2.4).
		tag := 0
		for {
			if n >= len(b) {
				return nil, false, nil, errBERTruncated
			}
			if n > 4 || (n == 1 && b[1] == 0x80) {
				return nil, false, nil, errBERSyntax
			}
			tag = tag<<7 | int(b[n]&0x7f)
			n++
			if b[n-1]&0x80 == 0 {
				break
			}
		}
		if tag < 0x1f {
			return nil, false, nil, errBERSyntax
		}
	}
	return b[:n], b[0]&0x20 != 0, b[n:], nil
}

// readLength reads a length: short, long (up to four octets, leading zeros
// allowed as BER allows) or indefinite. A definite length must fit in b.
func readLength(b []byte) (length int, indefinite bool, rest []byte, err error) {
	if len(b) == 0 {
		return 0, false, nil, errBERTruncated
	}
	first := b[0]
	b = b[1:]
	switch {
	case first < 0x80:
		length = int(first)
	case first == 0x80:
		return 0, true, b, nil
	case first == 0xff:
		return 0, false, nil, errBERSyntax
	default:
		n := int(first & 0x7f)
		if n > 4 {
			return 0, false, nil, errBERSyntax // more than 4 GiB: not in a 1 MiB file
		}
		if len(b) < n {
			return 0, false, nil, errBERTruncated
		}
		for _, c := range b[:n] {
			length = length<<8 | int(c)
		}
		b = b[n:]
	}
	if length > len(b) {
		return 0, false, nil, errBERTruncated
	}
	return length, false, b, nil
}

// appendTLV appends a DER element: identifier, shortest definite length,
// contents.
func appendTLV(out, ident, content []byte) []byte {
	out = append(out, ident...)
	n := len(content)
	switch {
	case n < 0x80:
		out = append(out, byte(n))
	case n <= 0xff:
		out = append(out, 0x81, byte(n))
	case n <= 0xffff:
		out = append(out, 0x82, byte(n>>8), byte(n))
	case n <= 0xffffff:
		out = append(out, 0x83, byte(n>>16), byte(n>>8), byte(n))
	default:
		out = append(out, 0x84, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(out, content...)
}
