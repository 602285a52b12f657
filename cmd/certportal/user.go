package main

import (
	"fmt"
	"log/slog"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

func (a *app) userCommand() *cobra.Command {
	c := &cobra.Command{Use: "user", Short: "Manage accounts"}
	c.AddCommand(a.userAdd(), a.userShow(), a.userList(), a.userCancel(), a.userUnlock(), a.userResetPassword(), a.userSetEmail(),
		a.userSetRole(), a.userImport())
	return c
}

// accountJSON is how accounts are printed with --json.
type accountJSON struct {
	ID              string `json:"id"`
	Email           string `json:"email"`
	Method          string `json:"method"`
	Status          string `json:"status"`
	Role            string `json:"role"`
	PasswordExpires string `json:"password_expires,omitempty"`
	Created         string `json:"created"`
}

// accountShowJSON is `user show --json`: the account and its lockouts
// (an empty list when there are none).
type accountShowJSON struct {
	accountJSON
	Lockouts []lockoutJSON `json:"lockouts"`
}

type lockoutJSON struct {
	From  string `json:"from"` // the address, or an IPv6 /64
	Until string `json:"until"`
}

func toAccountJSON(acc *certportal.Account) accountJSON {
	j := accountJSON{ID: acc.ID, Email: acc.Email, Method: string(acc.Method), Status: string(acc.Status), Role: string(acc.RoleOf()), Created: acc.Created.UTC().Format("2006-01-02T15:04:05Z")}
	if !acc.PasswordExpires.IsZero() {
		j.PasswordExpires = acc.PasswordExpires.UTC().Format("2006-01-02T15:04:05Z")
	}
	return j
}

func (a *app) printAccounts(list []certportal.Account) error {
	if a.jsonOut {
		out := make([]accountJSON, 0, len(list))
		for i := range list {
			out = append(out, toAccountJSON(&list[i]))
		}
		return printJSON(a.stdout, out)
	}
	rows := make([][]string, 0, len(list))
	for _, acc := range list {
		rows = append(rows, []string{acc.ID, acc.Email, string(acc.Method), string(acc.Status), string(acc.RoleOf())})
	}
	return printTable(a.stdout, []string{"ID", "EMAIL", "METHOD", "STATUS", "ROLE"}, rows)
}

func (a *app) userAdd() *cobra.Command {
	var id, email, pwFile string
	c := &cobra.Command{
		Use:   "add",
		Short: "Add an account that signs in with a password (a password is generated when none is given)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			password := ""
			if pwFile != "" {
				var err error
				if password, err = a.readSecret(pwFile, "", false); err != nil {
					return err
				}
			}
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			acc, generated, err := e.svc.AddUser(cmd.Context(), portal.Admin, id, email, password)
			if err != nil {
				return err
			}
			if a.jsonOut {
				type added struct {
					accountJSON
					Password string `json:"password,omitempty"`
				}
				return printJSON(a.stdout, added{toAccountJSON(acc), generated})
			}
			fmt.Fprintf(a.stdout, "Added %s <%s>, sign-in method password.\n", acc.ID, acc.Email)
			if generated != "" {
				fmt.Fprintf(a.stdout, "Password: %s\n(shown only now; give it to the user over a safe channel)\n", generated)
			}
			return nil
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	c.Flags().StringVar(&id, "id", "", "user ID (1-64 of A-Z a-z 0-9 . _ @ -)")
	c.Flags().StringVar(&email, "email", "", "registered e-mail address")
	c.Flags().StringVar(&pwFile, "password-file", "", "file holding the password (- = standard input); none = generate one")
	required(c, "id", "email")
	return c
}

func (a *app) userShow() *cobra.Command {
	var id string
	c := &cobra.Command{
		Use:   "show",
		Short: "Show one account",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			v, err := e.svc.AccountPage(cmd.Context(), id)
			if err != nil {
				return err
			}
			if a.jsonOut {
				j := accountShowJSON{accountJSON: toAccountJSON(v.Account), Lockouts: []lockoutJSON{}}
				for _, l := range v.Lockouts {
					j.Lockouts = append(j.Lockouts, lockoutJSON{From: l.Remote, Until: l.Until.UTC().Format("2006-01-02T15:04:05Z")})
				}
				return printJSON(a.stdout, j)
			}
			if err := a.printAccounts([]certportal.Account{*v.Account}); err != nil {
				return err
			}
			if len(v.Lockouts) == 0 {
				fmt.Fprintln(a.stdout, "Not locked out.")
				return nil
			}
			for _, l := range v.Lockouts {
				fmt.Fprintf(a.stdout, "Locked out for sign-ins from %s until %s; `certportal user unlock --id %s` lifts it.\n",
					l.Remote, l.Until.UTC().Format("2006-01-02 15:04 UTC"), v.Account.ID)
			}
			return nil
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	c.Flags().StringVar(&id, "id", "", "user ID")
	required(c, "id")
	return c
}

func (a *app) userList() *cobra.Command {
	c := &cobra.Command{
		Use:   "list",
		Short: "List accounts",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			list, err := e.svc.Accounts(cmd.Context())
			if err != nil {
				return err
			}
			return a.printAccounts(list)
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	return c
}

// userAction builds the user subcommands that take only --id.
func (a *app) userAction(use, short string, do func(e *env, cmd *cobra.Command, id string) (string, error)) *cobra.Command {
	var id string
	c := &cobra.Command{
		Use:   use,
		Short: short,
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), slog.New(slog.NewTextHandler(a.stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
			if err != nil {
				return err
			}
			defer e.Close()
			msg, err := do(e, cmd, id)
			if err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, msg)
			return nil
		},
	}
	a.dataFlags(c)
	c.Flags().StringVar(&id, "id", "", "user ID")
	required(c, "id")
	return c
}

// sendNotices sends the notice mails a command wrote into the database's
// outbox with its change; what cannot go out now, a running serve sends
// later.
func (a *app) sendNotices(e *env, cmd *cobra.Command) {
	if _, err := e.svc.SendQueuedMail(cmd.Context()); err != nil {
		fmt.Fprintf(a.stderr, "The notice mail to the user waits in the database; certportal serve sends it (%s).\n", certportal.ErrorMessage(err))
	}
}

func (a *app) userCancel() *cobra.Command {
	return a.userAction("cancel", "Cancel an account: revoke its certificates and refuse every sign-in (records are kept)",
		func(e *env, cmd *cobra.Command, id string) (string, error) {
			if err := e.svc.CancelUser(cmd.Context(), portal.Admin, id); err != nil {
				return "", err
			}
			a.sendNotices(e, cmd)
			return fmt.Sprintf("Cancelled %s; its certificates are revoked.", id), nil
		})
}

func (a *app) userUnlock() *cobra.Command {
	return a.userAction("unlock", "Lift a password lockout",
		func(e *env, cmd *cobra.Command, id string) (string, error) {
			acc, err := e.svc.Unlock(cmd.Context(), portal.Admin, id)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("Unlocked %s.", acc.ID), nil
		})
}

func (a *app) userResetPassword() *cobra.Command {
	return a.userAction("reset-password", "Revoke the certificates, switch to password sign-in and mail a temporary password",
		func(e *env, cmd *cobra.Command, id string) (string, error) {
			acc, err := e.svc.ResetPassword(cmd.Context(), portal.Admin, id)
			if err != nil {
				return "", err
			}
			return fmt.Sprintf("Mailed a temporary password to %s's registered address; the sign-in method is password.", acc.ID), nil
		})
}

func (a *app) userSetEmail() *cobra.Command {
	var email string
	c := a.userAction("set-email", "Change the registered e-mail address (a notice goes to the old and the new address)",
		func(e *env, cmd *cobra.Command, id string) (string, error) {
			acc, err := e.svc.SetEmail(cmd.Context(), portal.Admin, id, email)
			if err != nil {
				return "", err
			}
			a.sendNotices(e, cmd)
			return fmt.Sprintf("%s's registered address is now %s.", acc.ID, acc.Email), nil
		})
	c.Flags().StringVar(&email, "email", "", "new e-mail address")
	required(c, "email")
	return c
}
