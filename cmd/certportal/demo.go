package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// demoUser is the account demo creates.
const (
	demoUser  = "demo"
	demoEmail = "demo@example.com"
)

func (a *app) demoCommand() *cobra.Command {
	var o serveOptions
	c := &cobra.Command{
		Use:   "demo",
		Short: "Try certportal: init a data directory (temporary unless --data), add a demo user and serve",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if !cmd.Flags().Changed("data") {
				dir, err := os.MkdirTemp("", "certportal-demo-")
				if err != nil {
					return err
				}
				a.dataDir = filepath.Join(dir, "data")
			}
			if _, err := os.Stat(filepath.Join(a.dataDir, configFile)); os.IsNotExist(err) {
				if _, err := a.initData(ctx, initOptions{url: "http://localhost:8080", rootCN: "SOP-RCA", issuingCN: "SOP-ICA1", keyType: "p256", listen: "127.0.0.1:8443"}); err != nil {
					return err
				}
			}
			e, err := a.openEnv(ctx, nil)
			if err != nil {
				return err
			}
			_, password, err := e.svc.AddUser(ctx, portal.Admin, demoUser, demoEmail, "")
			e.Close()
			if certportal.ErrorCodeOf(err) == certportal.Conflict {
				password = "(unchanged: the user exists already in this data directory)"
			} else if err != nil {
				return err
			}
			return a.serve(ctx, o, func(e *env, https, plain string) {
				fmt.Fprintf(a.stdout, `certportal demo is running.

  Portal:    %s   (your browser will warn: the portal's CA is new to it;
                                       trust %s to avoid that)
  User ID:   %s
  Password:  %s
  Mail:      written as .eml files to %s
  Data:      %s

Sign in with the ID and password, then ask for a certificate.
Stop with Ctrl+C.
`, https, filepath.Join(e.dir, caDir, "root.crt"), demoUser, password, filepath.Join(e.dir, outboxDir), e.dir)
			})
		},
	}
	a.dataFlags(c)
	a.serveFlags(c, &o)
	return c
}
