package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
)

// The audit key signs the audit log's checkpoints (SPEC.md "Accounts").
// Its private half stays in DATA/ca with the other keys; its public half
// is beside it, and in every checkpoint line, so a copy of the checkpoint
// log kept elsewhere can be checked.
const (
	auditKeyFile      = "audit.key"
	auditPubFile      = "audit.pub"
	checkpointLogFile = "audit-checkpoints.log"
)

// loadAuditKey reads DATA/ca/audit.key. With create, a missing key is made
// (init, and serve on an installation from before audit keys); created
// says so. Without create, a missing key is (nil, false, nil).
func loadAuditKey(dataDir string, create bool) (key ed25519.PrivateKey, created bool, err error) {
	p := filepath.Join(dataDir, caDir, auditKeyFile)
	b, err := os.ReadFile(p)
	switch {
	case err == nil:
		blk, _ := pem.Decode(b)
		if blk == nil || blk.Type != "PRIVATE KEY" {
			return nil, false, certportal.Errorf(certportal.Invalid, "%s is not a PEM private key", p)
		}
		k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
		if ek, ok := k.(ed25519.PrivateKey); err == nil && ok {
			return ek, false, nil
		}
		return nil, false, certportal.Errorf(certportal.Invalid, "%s is not an Ed25519 key", p)
	case !errors.Is(err, fs.ErrNotExist):
		return nil, false, certportal.WrapError(certportal.Unavailable, err, "cannot read "+p)
	case !create:
		return nil, false, nil
	}
	_, key, err = ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, false, err
	}
	der, _ := x509.MarshalPKCS8PrivateKey(key)
	pub, _ := x509.MarshalPKIXPublicKey(key.Public())
	if err := atomicfile.WriteFile(filepath.Join(dataDir, caDir, auditPubFile), pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub}), 0o644); err != nil {
		return nil, false, certportal.WrapError(certportal.Unavailable, err, "cannot write the audit key")
	}
	if err := atomicfile.WriteNew(p, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		if errors.Is(err, fs.ErrExist) { // made meanwhile by another process
			return loadAuditKey(dataDir, false)
		}
		return nil, false, certportal.WrapError(certportal.Unavailable, err, "cannot write the audit key")
	}
	return key, true, nil
}
