package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

func (a *app) certCommand() *cobra.Command {
	c := &cobra.Command{Use: "cert", Short: "Issue, list and revoke user certificates"}
	c.AddCommand(a.certIssue(), a.certList(), a.certRevoke())
	return c
}

// certJSON is how certificates are printed with --json.
type certJSON struct {
	Serial     string `json:"serial"`
	User       string `json:"user"`
	Issuer     string `json:"issuer"`
	NotBefore  string `json:"not_before"`
	NotAfter   string `json:"not_after"`
	Status     string `json:"status"`
	Revoked    string `json:"revoked,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Thumbprint string `json:"thumbprint"`
	SHA256     string `json:"sha256"`
}

func (a *app) certIssue() *cobra.Command {
	var id, out, pwFile, keyType string
	var legacy, force bool
	c := &cobra.Command{
		Use:   "issue",
		Short: "Issue a certificate for an account and write it as a password-protected PKCS#12 file",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			kt := ca.KeyType("")
			if keyType != "" {
				var err error
				if kt, err = ca.ParseKeyType(keyType); err != nil {
					return err
				}
			}
			if _, err := os.Stat(out); err == nil && !force {
				return certportal.Errorf(certportal.Conflict, "%s exists; choose another file or add --force", out)
			}
			pw, err := a.readSecret(pwFile, "PKCS#12 password: ", true)
			if err != nil {
				return err
			}
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			// The file is claimed before the certificate is issued, so an
			// unwritable path fails before anything changes.
			f, err := os.OpenFile(out+".partial", os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
			if err != nil {
				return certportal.Errorf(certportal.Invalid, "cannot write %s: %v", out, pathError(err))
			}
			f.Close()
			defer os.Remove(out + ".partial")
			res, err := e.svc.Issue(cmd.Context(), portal.Admin, portal.IssueRequest{ID: id, P12Password: pw, Legacy: legacy, KeyType: kt})
			if err != nil {
				return err
			}
			if err := writeFileAtomic(out, res.P12, 0o600); err != nil {
				return certportal.Errorf(certportal.Internal, "the certificate %s was issued but %s could not be written (%v); revoke it with 'certportal cert revoke --serial %s' and issue again", res.Cert.Serial, out, pathError(err), res.Cert.Serial)
			}
			a.sendNotices(e, cmd)
			if a.jsonOut {
				return printJSON(a.stdout, toCertJSON(res.Cert))
			}
			fmt.Fprintf(a.stdout, "Issued certificate %s to %s (valid until %s, thumbprint %s); wrote %s.\n",
				res.Cert.Serial, res.Cert.AccountID, day(res.Cert.NotAfter), res.Cert.Thumbprint, out)
			return nil
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	c.Flags().StringVar(&id, "id", "", "user ID")
	c.Flags().StringVar(&out, "out", "", "PKCS#12 file to write (.p12)")
	c.Flags().StringVar(&pwFile, "password-file", "", "file holding the PKCS#12 password (- = standard input)")
	c.Flags().BoolVar(&legacy, "legacy", false, "3DES/SHA-1 encryption for old systems (macOS Keychain, older Windows)")
	c.Flags().BoolVar(&force, "force", false, "overwrite the output file")
	c.Flags().StringVar(&keyType, "key-type", "", "user key type: p256, p384, rsa2048, rsa3072, rsa4096 (default from the config)")
	required(c, "id", "out")
	return c
}

func toCertJSON(c *certportal.Certificate) certJSON {
	j := certJSON{
		Serial: c.Serial, User: c.AccountID, Issuer: c.Issuer,
		NotBefore: c.NotBefore.UTC().Format("2006-01-02T15:04:05Z"), NotAfter: c.NotAfter.UTC().Format("2006-01-02T15:04:05Z"),
		Status: c.State(timeNow()), Thumbprint: c.Thumbprint, SHA256: c.SHA256,
	}
	if c.IsRevoked() {
		j.Revoked = c.Revoked.UTC().Format("2006-01-02T15:04:05Z")
		if c.Reason != certportal.ReasonNone {
			j.Reason = c.Reason.String()
		}
	}
	return j
}

func (a *app) certList() *cobra.Command {
	var id string
	c := &cobra.Command{
		Use:   "list",
		Short: "List certificates: serial, user, not after, status, thumbprint",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			list, err := e.svc.Certificates(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]certJSON, 0, len(list))
				for i := range list {
					out = append(out, toCertJSON(&list[i]))
				}
				return printJSON(a.stdout, out)
			}
			rows := make([][]string, 0, len(list))
			for _, c := range list {
				rows = append(rows, []string{c.Serial, c.AccountID, day(c.NotAfter), c.State(timeNow()), c.Thumbprint})
			}
			return printTable(a.stdout, []string{"SERIAL", "USER", "NOT AFTER", "STATUS", "THUMBPRINT"}, rows)
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	c.Flags().StringVar(&id, "id", "", "only this user's certificates")
	return c
}

func (a *app) certRevoke() *cobra.Command {
	var serial, reason string
	c := &cobra.Command{
		Use:   "revoke",
		Short: "Revoke a certificate",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			r, err := certportal.ParseReason(reason)
			if err != nil {
				return err
			}
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			c, err := e.svc.Revoke(cmd.Context(), portal.Admin, serial, r)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Revoked certificate %s of %s.\n", c.Serial, c.AccountID)
			return nil
		},
	}
	a.dataFlags(c)
	c.Flags().StringVar(&serial, "serial", "", "serial number (hex, any case, colons allowed)")
	c.Flags().StringVar(&reason, "reason", "", "keyCompromise, superseded, cessationOfOperation, affiliationChanged or privilegeWithdrawn (default: none given)")
	required(c, "serial")
	return c
}
