package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/portal"
)

// Key custody (SPEC.md "Key custody"): serve runs without the root key;
// `ca root-key export` moves it off the server, encrypted to a passphrase,
// and the commands that sign with the root (ca rollover, ca root-crl) take
// that file with --root-key.

// rootKeyOptions are the flags of a command that signs with the root key.
type rootKeyOptions struct {
	file, passFile string
}

func (o *rootKeyOptions) flags(c *cobra.Command) {
	c.Flags().StringVar(&o.file, "root-key", "", "the root key file written by 'certportal ca root-key export' (needed once root.key is no longer in DATA/ca)")
	c.Flags().StringVar(&o.passFile, "passphrase-file", "", "file holding the passphrase of --root-key (- = standard input); default: ask on the terminal")
}

// maxRootKeyFileRead bounds what is read of a --root-key file; the ca
// package refuses anything near that size.
const maxRootKeyFileRead = 1 << 20

// loadRootKey gives auth the root key: from the --root-key file, or else
// from DATA/ca. Nothing is written: a wrong passphrase or a key that is not
// the root's changes nothing.
func (a *app) loadRootKey(auth *ca.Authority, o rootKeyOptions) error {
	if o.file == "" {
		if o.passFile != "" {
			return usageError{errors.New("--passphrase-file is the passphrase of --root-key; give both")}
		}
		return auth.LoadRootKey()
	}
	f, err := os.Open(o.file)
	if err != nil {
		return certportal.Errorf(certportal.Invalid, "cannot read the root key file %s: %v", o.file, pathError(err))
	}
	defer f.Close()
	if fi, err := f.Stat(); err != nil || !fi.Mode().IsRegular() {
		return certportal.Errorf(certportal.Invalid, "%s is not a root key file", o.file)
	}
	data, err := io.ReadAll(io.LimitReader(f, maxRootKeyFileRead))
	if err != nil {
		return certportal.Errorf(certportal.Invalid, "cannot read the root key file %s: %v", o.file, pathError(err))
	}
	pass, err := a.readRootKeyPassphrase(o.passFile, false)
	if err != nil {
		return err
	}
	key, err := ca.OpenRootKey(data, pass)
	if err != nil {
		return err
	}
	return auth.UseRootKey(key)
}

// readRootKeyPassphrase reads the passphrase of a root key file from file,
// or asks on the terminal (twice when confirm is set).
func (a *app) readRootKeyPassphrase(file string, confirm bool) (string, error) {
	if file == "" {
		f, ok := a.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", certportal.Errorf(certportal.Invalid, "no passphrase given: use --passphrase-file FILE (- = standard input), or run on a terminal to be asked")
		}
	}
	return a.readSecret(file, "Passphrase of the root key file: ", confirm)
}

// rootKeyCommand is `certportal ca root-key`, with `export` under it.
func (a *app) rootKeyCommand() *cobra.Command {
	c := &cobra.Command{Use: "root-key", Short: "The root CA's private key: move it off the server"}
	var out, passFile string
	export := &cobra.Command{
		Use:   "export",
		Short: "Write the root key to a file encrypted to a passphrase and remove it from DATA/ca",
		Long: `export writes the root CA's private key to --out, encrypted with age to a
passphrase of at least 12 characters (read from --passphrase-file or asked
twice on the terminal), and removes DATA/ca/root.key once the file is
written, synced, read back and decrypted to the same key.

The portal runs without the root key. Keep the file off the server (two
copies, in different places) and the passphrase apart from it. The commands
that sign with the root, 'ca root-crl' and 'ca rollover', take it with
--root-key FILE.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.exportRootKey(cmd.Context(), out, passFile)
		},
	}
	a.dataFlags(export)
	export.Flags().StringVar(&out, "out", "", "the file to write (0600); it must not exist")
	export.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase (- = standard input); default: ask twice on the terminal")
	required(export, "out")
	c.AddCommand(export)
	return c
}

func (a *app) exportRootKey(ctx context.Context, out, passFile string) error {
	e, err := a.openEnv(ctx, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer e.Close()
	if !e.ca.RootKeyInDir() {
		return certportal.Errorf(certportal.NotFound, "the root key is not in %s: it was exported already", filepath.Join(e.dir, caDir))
	}
	if _, err := os.Lstat(out); err == nil {
		return certportal.Errorf(certportal.Conflict, "%s exists; choose a new file name, an export never replaces a file", out)
	}
	pass, err := a.readRootKeyPassphrase(passFile, true)
	if err != nil {
		return err
	}
	if err := e.ca.ExportRootKey(out, pass); err != nil {
		return err
	}
	abs, err := filepath.Abs(out)
	if err != nil {
		abs = out
	}
	err = e.svc.Record(ctx, portal.Admin, "", certportal.ActionRootKeyExported,
		"root key exported, encrypted, to "+abs+" and removed from DATA/ca")
	if err != nil {
		return certportal.WrapError(certportal.Unavailable, err, "the root key was exported to "+out+" and removed from DATA/ca, but recording it in the audit log failed")
	}
	fmt.Fprintf(a.stdout, "Wrote the root key, encrypted, to %s and removed %s.\nKeep the file off this server (two copies, in different places) and the passphrase apart from it.\nOnce a year, and after revoking an issuing CA, re-sign the root CRL: certportal ca root-crl --data %s --root-key FILE\n",
		out, filepath.Join(e.dir, caDir, ca.RootKeyFile), e.dir)
	return nil
}

// rootCRLJSON is what `ca root-crl --json` prints.
type rootCRLJSON struct {
	Number     string `json:"number"`
	ThisUpdate string `json:"this_update"`
	NextUpdate string `json:"next_update"`
	File       string `json:"file"`
}

// rootCRLCommand is `certportal ca root-crl`: re-sign the root CRL.
func (a *app) rootCRLCommand() *cobra.Command {
	var o rootKeyOptions
	c := &cobra.Command{
		Use:   "root-crl",
		Short: "Re-sign the root CRL with the root key (yearly, and after an issuing CA is revoked)",
		Long: `root-crl signs a new root CRL with the root key, valid for root_crl_days
(config.json, 365 by default), and writes it to DATA/ca/root.crl, which
running portals publish at /crl/root.crl as soon as it changes. Its CRL
number comes from the database, so none is ever reused.

The root key is read from DATA/ca, or, once exported, from --root-key FILE
with its passphrase (--passphrase-file, or asked on the terminal).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			e, err := a.openEnv(cmd.Context(), slog.New(slog.DiscardHandler))
			if err != nil {
				return err
			}
			defer e.Close()
			lifetime, err := e.cfg.rootCRLLifetime()
			if err != nil {
				return err
			}
			if err := a.loadRootKey(e.ca, o); err != nil {
				return err
			}
			defer e.ca.DropRootKey()
			crl, err := e.svc.SignRootCRL(cmd.Context(), portal.Admin, lifetime)
			if err != nil {
				return err
			}
			return a.printRootCRL(e, crl)
		},
	}
	a.dataFlags(c)
	a.jsonFlag(c)
	o.flags(c)
	return c
}

// printRootCRL reports a root CRL just signed.
func (a *app) printRootCRL(e *env, crl *ca.RootCRL) error {
	p := filepath.Join(e.dir, caDir, ca.RootCRLFile)
	if a.jsonOut {
		return printJSON(a.stdout, rootCRLJSON{
			Number: crl.Number.String(), File: p,
			ThisUpdate: crl.ThisUpdate.UTC().Format(time.RFC3339), NextUpdate: crl.NextUpdate.UTC().Format(time.RFC3339),
		})
	}
	fmt.Fprintf(a.stdout, "Signed the root CRL number %s, valid until %s, into %s; running portals serve it at once.\n",
		crl.Number, crl.NextUpdate.UTC().Format("2006-01-02"), p)
	return nil
}
