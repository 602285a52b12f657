package main

import (
	"crypto/x509"
	"log/slog"
	"time"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
)

// timeNow is the clock of the command line's listings.
var timeNow = time.Now

type caJSON struct {
	Role       string `json:"role"`
	Subject    string `json:"subject"`
	Serial     string `json:"serial"`
	NotAfter   string `json:"not_after"`
	Thumbprint string `json:"thumbprint"`
	SHA256     string `json:"sha256"`
	// Current marks the issuing CA that issues new certificates (after a
	// rollover there are several issuing CAs).
	Current bool `json:"current,omitempty"`
}

func (a *app) caCommand() *cobra.Command {
	c := &cobra.Command{Use: "ca", Short: "The certificate authority"}
	show := &cobra.Command{
		Use:   "show",
		Short: "Show the root and issuing CAs (all of them, oldest first): subject, serial, not after, thumbprint, SHA-256",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer e.Close()
			list := []caJSON{caEntry("root", e.ca.Root)}
			for _, c := range e.ca.Issuers {
				entry := caEntry("issuing", c)
				entry.Current = c == e.ca.Issuing
				list = append(list, entry)
			}
			list = append(list, caEntry("tls", e.ca.TLSCA))
			if a.jsonOut {
				return printJSON(a.stdout, list)
			}
			rows := make([][]string, 0, len(list))
			for _, c := range list {
				role := c.Role
				if c.Current && len(e.ca.Issuers) > 1 {
					role += " (current)"
				}
				rows = append(rows, []string{role, c.Subject, c.Serial, c.NotAfter, c.Thumbprint, c.SHA256})
			}
			return printTable(a.stdout, []string{"ROLE", "SUBJECT", "SERIAL", "NOT AFTER", "THUMBPRINT (SHA-1)", "SHA-256"}, rows)
		},
	}
	a.dataFlags(show)
	a.jsonFlag(show)
	c.AddCommand(show, a.rolloverCommand(), a.rootCRLCommand(), a.rootKeyCommand())
	return c
}

func caEntry(role string, c *x509.Certificate) caJSON {
	return caJSON{
		Role: role, Subject: c.Subject.String(), Serial: certportal.FormatSerial(c.SerialNumber),
		NotAfter: c.NotAfter.UTC().Format("2006-01-02T15:04:05Z"), Thumbprint: certportal.Thumbprint(c.Raw), SHA256: certportal.Fingerprint256(c.Raw),
	}
}
