// Command certportal runs the certificate portal and administers it: the CA
// and its storage (init, ca, cert, user, audit), the portal itself (serve,
// demo), and the user's side (store, whoami).
//
// Exit status: 0 on success, 1 when an operation was refused or failed (one
// sentence on standard error), 2 on wrong usage.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
)

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ error }

// app holds what every command shares: the streams and global flags.
type app struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	dataDir        string
	dbURL          string
	jsonOut        bool
	ran            bool // a command's RunE started: later errors are not usage errors
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	a := &app{stdin: stdin, stdout: stdout, stderr: stderr}
	root := a.rootCommand()
	root.SetArgs(args)
	root.SetIn(stdin)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return 0
	}
	var ue usageError
	if errors.As(err, &ue) || !a.ran {
		fmt.Fprintf(stderr, "certportal: %v\nRun 'certportal help' for usage.\n", err)
		return 2
	}
	fmt.Fprintf(stderr, "certportal: %s\n", certportal.ErrorMessage(err))
	return 1
}

func (a *app) rootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:           "certportal",
		Short:         "A portal whose users sign in with certificates from its own CA",
		SilenceErrors: true,
		SilenceUsage:  true,
		Version:       buildVersion(),
	}
	root.SetFlagErrorFunc(func(c *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(
		a.initCommand(), a.serveCommand(), a.demoCommand(),
		a.userCommand(), a.certCommand(), a.caCommand(), a.auditCommand(),
		a.storeCommand(), a.whoamiCommand(), a.versionCommand(),
		a.backupCommand(), a.restoreCommand(),
	)
	markRuns(root, &a.ran)
	return root
}

// markRuns wraps every command's RunE so that it records that it started:
// cobra checks arguments and required flags before, and an error from
// those is a usage error (exit status 2), one from the command itself is not.
func markRuns(c *cobra.Command, ran *bool) {
	if run := c.RunE; run != nil {
		c.RunE = func(cmd *cobra.Command, args []string) error {
			*ran = true
			return run(cmd, args)
		}
	}
	for _, sub := range c.Commands() {
		markRuns(sub, ran)
	}
}

// dataFlags adds --data and --db to a command that touches the portal's data.
func (a *app) dataFlags(c *cobra.Command) {
	c.Flags().StringVar(&a.dataDir, "data", "./certportal-data", "the portal's data directory")
	c.Flags().StringVar(&a.dbURL, "db", "", "database: sqlite:PATH (default: inside the data directory) or postgres://...")
}

// jsonFlag adds --json to a command that prints records.
func (a *app) jsonFlag(c *cobra.Command) {
	c.Flags().BoolVar(&a.jsonOut, "json", false, "print JSON instead of a table")
}

// exactArgs is cobra.ExactArgs with a usage error.
func exactArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if err := cobra.ExactArgs(n)(cmd, args); err != nil {
			return usageError{err}
		}
		return nil
	}
}

// required marks flags as required; cobra reports a missing one before the
// command runs, which makes it a usage error (exit status 2).
func required(c *cobra.Command, names ...string) {
	for _, n := range names {
		_ = c.MarkFlagRequired(n)
	}
}
