package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/clientstore"
)

// storeRenew is "certportal store renew": the user's side of renewal. It
// signs in to the portal with the personal certificate, has it renewed
// (POST /api/renew), and puts the new certificate in the store in place of
// the old one.
func (a *app) storeRenew() *cobra.Command {
	var keys keyFlags
	var dir, url, thumb, pwFile string
	var legacy bool
	c := &cobra.Command{
		Use:   "renew",
		Short: "Renew your certificate at the portal in its last days, and put the new one in the store in place of the old one",
		Long: `Renew signs in to the portal with your personal certificate (over mutual TLS,
trusting the roots in your store) and asks for a new certificate. The portal
renews only during the certificate's last days (30 by default) and says from
when otherwise. The new certificate and its key go to the personal store; the
old one is removed only after the new one is stored.

The certificate file travels with a random password that nobody needs to know,
so you are not asked for one; --password-file sets it instead.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openClientStore(dir, false)
			if err != nil {
				return err
			}
			a.usePassphrase(s, keys)
			if thumb != "" {
				if thumb, err = certportal.NormalizeHex(thumb); err != nil {
					return err
				}
			}
			pw := ""
			if pwFile != "" {
				if pw, err = a.readSecret(pwFile, "", false); err != nil {
					return err
				}
			}
			res, err := clientstore.Renew(cmd.Context(), url, s, clientstore.RenewOptions{Thumbprint: thumb, Password: pw, Legacy: legacy})
			if res == nil {
				return err
			}
			if a.jsonOut {
				if perr := printJSON(a.stdout, map[string]entryJSON{"old": toEntryJSON(&res.Old), "new": toEntryJSON(&res.New)}); perr != nil {
					return perr
				}
				return err
			}
			fmt.Fprintf(a.stdout, "Renewed the certificate of %s: the new one (serial %s, thumbprint %s) is valid until %s.\n",
				res.New.IssuedTo, res.New.Serial, res.New.Thumbprint, res.New.NotAfter.UTC().Format(time.DateOnly))
			if err == nil {
				fmt.Fprintf(a.stdout, "The old one (thumbprint %s) has been removed from the personal store.\n", res.Old.Thumbprint)
			}
			return err
		},
	}
	a.storeDirFlag(c, &dir)
	a.jsonFlag(c)
	a.keyFlags(c, &keys, false)
	c.Flags().StringVar(&url, "url", "", "the portal's address, e.g. https://localhost:8443")
	c.Flags().StringVar(&thumb, "thumbprint", "", "which personal certificate (default: the one the store's roots trust)")
	c.Flags().StringVar(&pwFile, "password-file", "", "file holding the password the new certificate file travels with (default: a random one)")
	c.Flags().BoolVar(&legacy, "legacy", false, "have the portal send the file as 3DES/SHA-1 (changes nothing in the store)")
	required(c, "url")
	return c
}
