package main

import (
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// rolloverCommand is `certportal ca rollover`: the next issuing CA.
func (a *app) rolloverCommand() *cobra.Command {
	var cn, keyType string
	var rk rootKeyOptions
	c := &cobra.Command{
		Use:   "rollover",
		Short: "Create the next issuing CA (SOP-ICA2, ...) under the root; new certificates come from it",
		Long: `Creates the next issuing CA, signed by the root with the same profile as the
first, as DATA/ca/issuing-<n>.crt and .key. New user certificates come from
it; the older issuing CAs keep signing their CRLs and OCSP answers, and their
certificates keep signing in, until they expire.

The root signs the new CA, and a new root CRL (DATA/ca/root.crl) while
its key is at hand: the key is read from DATA/ca or, once exported, from
--root-key FILE with its passphrase.

Running portals load DATA/ca at start: restart every serve process (every
replica sharing DATA/ca) after a rollover.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer e.Close()
			kt := ca.KeyType("")
			if keyType != "" {
				if kt, err = ca.ParseKeyType(keyType); err != nil {
					return err
				}
			}
			lifetime, err := e.cfg.rootCRLLifetime()
			if err != nil {
				return err
			}
			// The key first: a wrong passphrase or a foreign key file
			// stops the command before anything is written.
			if err := a.loadRootKey(e.ca, rk); err != nil {
				return err
			}
			defer e.ca.DropRootKey()
			cert, err := e.ca.Rollover(ca.RolloverOptions{CN: cn, KeyType: kt})
			if err != nil {
				return err
			}
			if _, err := e.svc.SignRootCRL(cmd.Context(), portal.Admin, lifetime); err != nil {
				return certportal.WrapError(certportal.ErrorCodeOf(err), err, fmt.Sprintf("the issuing CA %s was created, but the root CRL could not be signed (%s); run certportal ca root-crl",
					cert.Subject.CommonName, strings.TrimSuffix(certportal.ErrorMessage(err), ".")))
			}
			// Start its CRL at once, so /crl/<CN>.crl answers from the first
			// request, as init does for the first issuing CA.
			next, err := ca.Load(filepath.Join(e.dir, caDir), e.cfg.URL)
			if err != nil {
				return err
			}
			e.svc.CA = next
			if _, err := e.svc.CRL(cmd.Context(), cert.Subject.CommonName); err != nil {
				return err
			}
			if a.jsonOut {
				return printJSON(a.stdout, caEntry("issuing", cert))
			}
			fmt.Fprintf(a.stdout, "Created the issuing CA %s (serial %s, valid until %s); new certificates come from it.\nRestart every running 'certportal serve' that uses this data directory so it loads the new CA.\n",
				cert.Subject.CommonName, caEntry("", cert).Serial, cert.NotAfter.UTC().Format("2006-01-02"))
			return nil
		},
	}
	c.Flags().StringVar(&cn, "cn", "", "common name of the new CA (default: the current one's number plus one, e.g. SOP-ICA2)")
	c.Flags().StringVar(&keyType, "key-type", "", "key type of the new CA: p256, p384, rsa2048, rsa3072, rsa4096 (default: that of the current issuing CA)")
	a.dataFlags(c)
	a.jsonFlag(c)
	rk.flags(c)
	return c
}
