package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
)

func (a *app) auditCommand() *cobra.Command {
	var id string
	var verify bool
	c := &cobra.Command{
		Use:   "audit",
		Short: "Show the audit log; --verify checks its hash chain",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			if verify {
				n, err := e.svc.VerifyAudit(cmd.Context())
				if err != nil {
					return err
				}
				fmt.Fprintf(a.stdout, "The audit chain of %d records is intact.\n", n)
				return nil
			}
			list, err := e.svc.Audit(cmd.Context(), certportal.AuditFilter{AccountID: id})
			if err != nil {
				return err
			}
			if a.jsonOut {
				if list == nil {
					list = []certportal.AuditEvent{}
				}
				return printJSON(a.stdout, list)
			}
			rows := make([][]string, 0, len(list))
			for _, ev := range list {
				rows = append(rows, []string{fmt.Sprint(ev.Seq), ev.Time.UTC().Format("2006-01-02 15:04:05"), ev.Actor, ev.AccountID, ev.Action, ev.Remote, ev.Detail})
			}
			return printTable(a.stdout, []string{"SEQ", "TIME (UTC)", "ACTOR", "ACCOUNT", "ACTION", "FROM", "DETAIL"}, rows)
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	c.Flags().StringVar(&id, "id", "", "only records about this user")
	c.Flags().BoolVar(&verify, "verify", false, "check the hash chain of the whole log")
	return c
}
