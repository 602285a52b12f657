package clientstore

import (
	"crypto"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/sealed"
)

// A personal certificate's private key is the file <THUMBPRINT>.key: PKCS#8
// PEM, or — when the store's keys are protected by a passphrase — that PEM
// encrypted with age to the passphrase (scrypt) and ASCII-armored, which
// `age -d` also opens.

// keyWorkFactor is the scrypt work factor (log2 N) of an encrypted key:
// age's own default, about a second on a laptop, paid each time a command
// uses the key.
const keyWorkFactor = 18

// maxKeyFile bounds what readKey reads and decrypts: an RSA-4096 key is
// about 3.3 KB, armored and encrypted under 5 KB.
const maxKeyFile = 64 << 10

// passphrase is how a Store gets the passphrase of its private keys.
type passphrase struct {
	once    sync.Once
	get     func() (string, error)
	value   string
	err     error
	encrypt bool
}

// SetPassphrase gives the store the passphrase that protects its private
// keys; get nil means there is none to be had. get is called at most once, when the passphrase is first needed:
// to read an encrypted key, or to write a new key when encrypt is true. A
// store that already holds an encrypted key writes new keys (an import, a
// renewal) encrypted too, whatever encrypt says.
func (s *Store) SetPassphrase(get func() (string, error), encrypt bool) {
	s.pass = &passphrase{get: get, encrypt: encrypt}
}

func (s *Store) passphrase() (string, error) {
	p := s.pass
	if p == nil || p.get == nil {
		return "", errorf(certportal.Invalid, "the certificate store's private keys are encrypted, or are to be: give their passphrase with --key-passphrase-file FILE (or - for standard input), or run on a terminal to be asked")
	}
	p.once.Do(func() {
		p.value, p.err = p.get()
		if p.err == nil && p.value == "" {
			p.err = errorf(certportal.Invalid, "the passphrase of the certificate store's keys is empty")
		}
	})
	return p.value, p.err
}

// sealKeys reports whether new keys are to be written encrypted: asked
// for, or the store holds an encrypted key already. The caller holds the
// store's lock.
func (s *Store) sealKeys() (bool, error) {
	if s.pass != nil && s.pass.encrypt {
		return true, nil
	}
	dir := filepath.Join(s.dir, Personal)
	des, err := os.ReadDir(dir)
	if err != nil {
		return false, err
	}
	for _, de := range des {
		if !strings.HasSuffix(de.Name(), ".key") {
			continue
		}
		head := make([]byte, 64)
		f, err := os.Open(filepath.Join(dir, de.Name()))
		if err != nil {
			return false, err
		}
		n, _ := io.ReadFull(f, head)
		f.Close()
		if sealed.Is(head[:n]) {
			return true, nil
		}
	}
	return false, nil
}

// keyFile is the content of a key file for key: PKCS#8 PEM, encrypted when
// seal is true.
func (s *Store) keyFile(key crypto.Signer, seal bool) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, wrapf(certportal.Invalid, err, "the private key is of a type certportal cannot store")
	}
	plain := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if !seal {
		return plain, nil
	}
	pass, err := s.passphrase()
	if err != nil {
		return nil, err
	}
	b, err := sealed.Seal(plain, pass, keyWorkFactor)
	if err != nil {
		return nil, wrapf(certportal.Internal, err, "could not encrypt the private key")
	}
	return b, nil
}

// parseKeyFile turns the content of the key file at path into the key,
// decrypting it with the store's passphrase when it is encrypted.
func (s *Store) parseKeyFile(path string, data []byte) (crypto.Signer, error) {
	damaged := errorf(certportal.Internal, "the private key file %s is damaged", path)
	if sealed.Is(data) {
		pass, err := s.passphrase()
		if err != nil {
			return nil, err
		}
		data, err = sealed.Open(data, pass, keyWorkFactor, maxKeyFile)
		switch {
		case errors.Is(err, sealed.ErrWrongPassphrase):
			return nil, errorf(certportal.Unauthorized, "the passphrase of the certificate store's private key is wrong")
		case err != nil:
			return nil, damaged
		}
	}
	b, _ := pem.Decode(data)
	if b == nil || b.Type != "PRIVATE KEY" {
		return nil, damaged
	}
	k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
	if err != nil {
		return nil, wrapf(certportal.Internal, err, "the private key file %s is damaged", path)
	}
	signer, ok := k.(crypto.Signer)
	if !ok {
		return nil, errorf(certportal.Internal, "the private key file %s holds a key type certportal cannot use", path)
	}
	return signer, nil
}
