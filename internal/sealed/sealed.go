// Package sealed keeps small secrets — private keys — encrypted to a
// passphrase with age (scrypt), ASCII-armored, so the `age` tool opens
// them too. The root key exported by `ca root-key export` and the keys of
// a client store protected by a passphrase are such files.
package sealed

import (
	"bytes"
	"errors"
	"io"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// ErrWrongPassphrase is what Open returns when the file is an age file for
// a passphrase, but not this one.
var ErrWrongPassphrase = errors.New("wrong passphrase")

// Is reports whether data begins as an armored age file.
func Is(data []byte) bool {
	return bytes.HasPrefix(bytes.TrimLeft(data, " \t\r\n"), []byte(armor.Header))
}

// Seal encrypts plain to passphrase with scrypt at workFactor (log2 N;
// age's own default is 18) and armors it.
func Seal(plain []byte, passphrase string, workFactor int) ([]byte, error) {
	r, err := age.NewScryptRecipient(passphrase)
	if err != nil {
		return nil, err
	}
	r.SetWorkFactor(workFactor)
	var buf bytes.Buffer
	aw := armor.NewWriter(&buf)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return nil, err
	}
	if _, err := w.Write(plain); err != nil {
		return nil, err
	}
	if err := w.Close(); err != nil {
		return nil, err
	}
	if err := aw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// Open decrypts data, armored or binary age, with passphrase. It refuses a
// scrypt work factor above maxWorkFactor (the cost an attacker's file can
// make us pay) and a plaintext over limit bytes. A wrong passphrase is
// ErrWrongPassphrase; any other error means data is not such a file, or is
// damaged.
func Open(data []byte, passphrase string, maxWorkFactor, limit int) ([]byte, error) {
	id, err := age.NewScryptIdentity(passphrase)
	if err != nil {
		return nil, err
	}
	id.SetMaxWorkFactor(maxWorkFactor)
	var src io.Reader = bytes.NewReader(data)
	if Is(data) {
		src = armor.NewReader(bytes.NewReader(data))
	}
	dec, err := age.Decrypt(src, id)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			// The one scrypt stanza did not open: age says no more.
			return nil, ErrWrongPassphrase
		}
		return nil, err
	}
	plain, err := io.ReadAll(io.LimitReader(dec, int64(limit)+1))
	if err != nil {
		return nil, err
	}
	if len(plain) > limit {
		return nil, errors.New("the sealed secret is too large")
	}
	return plain, nil
}
