package main

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// The role and bulk commands of issue 16: the first admin of the console
// is made here, and `user import` is the console's upload on the command
// line (the same code: portal.ParseAccountsCSV and Service.Import).

func (a *app) userSetRole() *cobra.Command {
	var role string
	c := a.userAction("set-role", "Set an account's role: user, helpdesk (the console's help desk) or admin",
		func(e *env, cmd *cobra.Command, id string) (string, error) {
			r, err := certportal.ParseRole(role)
			if err != nil {
				return "", err
			}
			acc, err := e.svc.SetRole(cmd.Context(), portal.Admin, id, r)
			if err != nil {
				return "", err
			}
			msg := fmt.Sprintf("%s's role is now %s.", acc.ID, acc.Role)
			if r != certportal.RoleUser {
				msg += " The console (/admin/) opens to this account when it signs in with its certificate."
			}
			return msg, nil
		})
	c.Flags().StringVar(&role, "role", "", "user, helpdesk or admin")
	required(c, "role")
	return c
}

func (a *app) userImport() *cobra.Command {
	var file string
	c := &cobra.Command{
		Use:   "import",
		Short: "Add accounts from a CSV file (id,email[,role]), all or none; each gets a temporary password by mail",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			f, err := os.Open(file)
			if err != nil {
				return certportal.Errorf(certportal.Invalid, "cannot read %s: %v", file, pathError(err))
			}
			rows, err := portal.ParseAccountsCSV(f)
			f.Close()
			if err != nil {
				return err
			}
			e, err := a.openEnv(cmd.Context(), slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				return err
			}
			defer e.Close()
			if err := e.svc.Import(cmd.Context(), portal.Admin, filepath.Base(file), rows); err != nil {
				return err
			}
			// The accounts are committed; their mails are in the
			// database's outbox. Send them now; what cannot go out
			// (the mail server is down, the command is interrupted) a
			// running `serve` sends later.
			sent, sendErr := e.svc.SendQueuedMail(cmd.Context())
			if a.jsonOut {
				type imported struct {
					Imported int `json:"imported"`
					Mailed   int `json:"mailed"`
				}
				return printJSON(a.stdout, imported{len(rows), sent})
			}
			fmt.Fprintf(a.stdout, "Imported %d accounts from %s; %d temporary passwords mailed.\n", len(rows), file, sent)
			switch {
			case sendErr != nil:
				fmt.Fprintf(a.stdout, "The other mails wait in the database; certportal serve sends them (%s).\n", certportal.ErrorMessage(sendErr))
			case sent < len(rows):
				fmt.Fprintln(a.stdout, "The other mails wait in the database; certportal serve sends them.")
			}
			return nil
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	c.Flags().StringVar(&file, "csv", "", "CSV file with the columns id,email[,role] (a header row is optional)")
	required(c, "csv")
	return c
}
