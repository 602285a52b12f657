package main

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/clientstore"
)

// storeRequest is "certportal store request": EST enrollment from the
// user's side. The key is made here and never leaves the machine; the
// portal gets a certificate signing request and answers with the
// certificate, which goes into the store with the key.
func (a *app) storeRequest() *cobra.Command {
	var keys keyFlags
	var dir, url, id, keyType, pwFile, rootFile string
	c := &cobra.Command{
		Use:   "request",
		Short: "Get a certificate for a key made on this machine (EST): the key never leaves it",
		Long: `Request makes a new key here and sends the portal only a certificate signing
request (EST, RFC 7030). The certificate that comes back, its key and the
portal's CA certificates go into the store, as an import of a PKCS#12 file
would put them.

When the store holds a valid certificate of the ID, it re-enrolls with it over
mutual TLS (the portal allows this in the certificate's last days), and the
old certificate is removed from the store once the new one is in. Otherwise it
asks for the account password and gets a first certificate, as the portal's
home page would; the account then signs in by certificate.

For a first certificate into an empty store, the portal's TLS certificate is
checked against the system's roots, or --root-cert (the portal's root as you
downloaded it from its "about certificate" page and checked its thumbprint).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			kt := ca.KeyType("")
			if keyType != "" {
				var err error
				if kt, err = ca.ParseKeyType(keyType); err != nil {
					return usageError{err}
				}
			}
			var roots []*x509.Certificate
			if rootFile != "" {
				var err error
				if roots, err = readRootCerts(rootFile); err != nil {
					return err
				}
			}
			s, err := openClientStore(dir, true)
			if err != nil {
				return err
			}
			a.usePassphrase(s, keys)
			res, err := clientstore.Request(cmd.Context(), url, s, clientstore.RequestOptions{
				ID: id, KeyType: kt, Roots: roots,
				Password: func() (string, error) { return a.readSecret(pwFile, "Password of "+id+": ", false) },
			})
			if res == nil {
				return err
			}
			if a.jsonOut {
				out := map[string]any{"new": toEntryJSON(&res.New), "reenrolled": res.Reenrolled}
				if res.Old != nil {
					out["old"] = toEntryJSON(res.Old)
				}
				if perr := printJSON(a.stdout, out); perr != nil {
					return perr
				}
				return err
			}
			how := "Enrolled"
			if res.Reenrolled {
				how = "Re-enrolled"
			}
			fmt.Fprintf(a.stdout, "%s %s: the new certificate (serial %s, thumbprint %s) is valid until %s; its key was made here and is in the personal store.\n",
				how, res.New.IssuedTo, res.New.Serial, res.New.Thumbprint, res.New.NotAfter.UTC().Format(time.DateOnly))
			if res.Old != nil && err == nil {
				fmt.Fprintf(a.stdout, "The old one (thumbprint %s) has been removed from the personal store.\n", res.Old.Thumbprint)
			}
			return err
		},
	}
	a.storeDirFlag(c, &dir)
	a.jsonFlag(c)
	a.keyFlags(c, &keys, true)
	c.Flags().StringVar(&url, "url", "", "the portal's address, e.g. https://localhost:8443")
	c.Flags().StringVar(&id, "id", "", "your user ID")
	c.Flags().StringVar(&keyType, "key-type", "", "p256 (default; on re-enrollment: the old key's type), p384, rsa2048, rsa3072 or rsa4096")
	c.Flags().StringVar(&pwFile, "password-file", "", "file holding the account password for a first certificate (- = standard input)")
	c.Flags().StringVar(&rootFile, "root-cert", "", "the portal's root certificate (PEM or DER) to trust for a first certificate")
	required(c, "url", "id")
	return c
}

// readRootCerts reads the certificates of a PEM or DER file.
func readRootCerts(path string) ([]*x509.Certificate, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, certportal.Errorf(certportal.Invalid, "cannot read %s: %v", path, pathError(err))
	}
	certs, err := parseCertsPEMOrDER(data)
	if err != nil {
		return nil, certportal.Errorf(certportal.Invalid, "%s holds no certificate (PEM or DER)", path)
	}
	return certs, nil
}

func parseCertsPEMOrDER(data []byte) ([]*x509.Certificate, error) {
	var out []*x509.Certificate
	rest := data
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, err
			}
			out = append(out, c)
		}
	}
	if len(out) > 0 {
		return out, nil
	}
	out, err := x509.ParseCertificates(data)
	if err == nil && len(out) == 0 {
		err = fmt.Errorf("no certificate")
	}
	return out, err
}
