package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

func (a *app) auditCommand() *cobra.Command {
	var id, copyFile string
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
				return a.verifyAudit(cmd, e, copyFile)
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
	c.Flags().BoolVar(&verify, "verify", false, "check the hash chain of the whole log and its signed checkpoints")
	c.Flags().StringVar(&copyFile, "checkpoints", "", "with --verify: also check against this copy of audit-checkpoints.log kept elsewhere")
	c.AddCommand(a.auditCheckpointCommand())
	return c
}

// verifyAudit is audit --verify: the chain, the hash versions, and every
// checkpoint (database, DATA/audit-checkpoints.log, --checkpoints F).
func (a *app) verifyAudit(cmd *cobra.Command, e *env, copyFile string) error {
	var extra []certportal.AuditCheckpoint
	if copyFile != "" {
		var err error
		if extra, err = portal.ReadCheckpoints(copyFile, true); err != nil {
			return err
		}
	}
	rep, err := e.svc.VerifyAudit(cmd.Context(), extra)
	if err != nil {
		return err
	}
	fmt.Fprintf(a.stdout, "The audit chain of %d records is intact", rep.Records)
	if rep.V2From > 1 {
		fmt.Fprintf(a.stdout, "; records from %d on hash every column (hash version 2), the %d before with version 1", rep.V2From, rep.V2From-1)
	}
	if rep.Checkpoints > 0 {
		fmt.Fprintf(a.stdout, "; %d signed checkpoints match, up to record %d", rep.Checkpoints, rep.LastChecked)
	} else {
		fmt.Fprint(a.stdout, "; there is no signed checkpoint yet")
	}
	fmt.Fprintln(a.stdout, ".")
	return nil
}

// auditCheckpointCommand is audit checkpoint: sign the newest record now.
func (a *app) auditCheckpointCommand() *cobra.Command {
	c := &cobra.Command{
		Use:   "checkpoint",
		Short: "Sign a checkpoint of the audit log now (serve writes one every minute)",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, _, err := loadAuditKey(a.dataDir, true); err != nil {
				return err
			}
			e, err := a.openEnv(cmd.Context(), nil)
			if err != nil {
				return err
			}
			defer e.Close()
			cp, err := e.svc.Checkpoint(cmd.Context())
			if err != nil {
				return err
			}
			if cp == nil {
				fmt.Fprintln(a.stdout, "The newest audit record has a checkpoint already.")
				return nil
			}
			fmt.Fprintf(a.stdout, "Signed a checkpoint of audit record %d (appended to %s).\n", cp.Seq, e.svc.CheckpointLog)
			return nil
		},
	}
	a.dataFlags(c)
	return c
}
