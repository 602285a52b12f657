package main

import (
	"fmt"
	"net"
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
				// It holds the CA's keys: gone when demo stops, also
				// after a failed start.
				defer os.RemoveAll(dir)
				a.dataDir = filepath.Join(dir, "data")
			}
			if _, err := os.Stat(filepath.Join(a.dataDir, configFile)); os.IsNotExist(err) {
				init, err := demoInit(o)
				if err != nil {
					return err
				}
				if _, err := a.initData(ctx, init); err != nil {
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
	if f := c.Flags().Lookup("data"); f != nil {
		f.Usage, f.DefValue = "data directory (default: a new temporary one, removed when demo stops)", ""
	}
	a.serveFlags(c, &o)
	return c
}

// demoInit is the init of a new demo data directory: the URLs its mails
// and certificates carry are the addresses demo listens on.
func demoInit(o serveOptions) (initOptions, error) {
	listen, httpListen := "127.0.0.1:8443", "127.0.0.1:8080"
	if o.listen != "" {
		listen = o.listen
	}
	if o.httpListen != "" {
		httpListen = o.httpListen
	}
	host, port, err := net.SplitHostPort(httpListen)
	if err != nil {
		return initOptions{}, usageError{fmt.Errorf("--http-listen must be HOST:PORT, not %q", httpListen)}
	}
	if host == "" || host == "127.0.0.1" || host == "::1" || host == "0.0.0.0" || host == "::" {
		host = "localhost"
	}
	return initOptions{url: "http://" + net.JoinHostPort(host, port), rootCN: "SOP-RCA", issuingCN: "SOP-ICA1", keyType: "p256", listen: listen}, nil
}
