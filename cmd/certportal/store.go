package main

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/clientstore"
)

// The user's side: a certificate manager with personal, intermediate and
// root stores, as on a desktop.

func (a *app) storeDirFlag(c *cobra.Command, dir *string) {
	c.Flags().StringVar(dir, "store-dir", "", "certificate store directory (default: $XDG_DATA_HOME/certportal/store)")
}

// keyFlags are the flags of the commands that use or write the store's
// private keys, which may be encrypted with a passphrase.
type keyFlags struct {
	file    string
	encrypt bool
}

// keyFlags registers --key-passphrase-file, and --encrypt-key for the
// commands that write a new key.
func (a *app) keyFlags(c *cobra.Command, k *keyFlags, writes bool) {
	c.Flags().StringVar(&k.file, "key-passphrase-file", "", "file holding the passphrase of the store's private keys (- = standard input); asked on a terminal when a key is encrypted")
	if writes {
		c.Flags().BoolVar(&k.encrypt, "encrypt-key", false, "encrypt the private key in the store with a passphrase (age); later commands ask for it")
	}
}

// usePassphrase tells s how to get the passphrase of its keys: from the
// file, else asked on the terminal when it is first needed (twice when a
// new key is to be encrypted with it). With neither, s says what to give.
func (a *app) usePassphrase(s *clientstore.Store, k keyFlags) {
	if k.file == "" && !a.onTerminal() {
		s.SetPassphrase(nil, k.encrypt)
		return
	}
	s.SetPassphrase(func() (string, error) {
		return a.readSecret(k.file, "Passphrase of the certificate store's private keys: ", k.encrypt && k.file == "")
	}, k.encrypt)
}

// openClientStore opens the store in dir (the default when ""). Only
// create (import) makes a store that does not exist; the commands that
// read one say there is none instead of showing an empty store.
func openClientStore(dir string, create bool) (*clientstore.Store, error) {
	if dir == "" {
		d, err := clientstore.DefaultDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	if !create {
		if fi, err := os.Stat(filepath.Join(dir, clientstore.Personal)); err != nil || !fi.IsDir() {
			return nil, certportal.Errorf(certportal.NotFound, "there is no certificate store in %s; import a certificate into it first (certportal store import FILE.p12)", dir)
		}
	}
	return clientstore.Open(dir)
}

func (a *app) storeCommand() *cobra.Command {
	c := &cobra.Command{Use: "store", Short: "Your certificate stores: import, export, list and delete certificates"}
	c.AddCommand(a.storeImport(), a.storeExport(), a.storeList(), a.storeDelete(), a.storeRenew(), a.storeRequest())
	return c
}

type entryJSON struct {
	Store      string `json:"store"`
	IssuedTo   string `json:"issued_to"`
	IssuedBy   string `json:"issued_by"`
	Expiration string `json:"expiration"`
	Serial     string `json:"serial"`
	Thumbprint string `json:"thumbprint"`
	SHA256     string `json:"sha256"`
	HasKey     bool   `json:"has_private_key"`
	Added      *bool  `json:"added,omitempty"`
}

func toEntryJSON(e *clientstore.Entry) entryJSON {
	return entryJSON{Store: e.Store, IssuedTo: e.IssuedTo, IssuedBy: e.IssuedBy, Expiration: e.NotAfter.UTC().Format("2006-01-02"),
		Serial: e.Serial, Thumbprint: e.Thumbprint, SHA256: e.SHA256, HasKey: e.HasKey}
}

func (a *app) storeImport() *cobra.Command {
	var keys keyFlags
	var dir, pwFile string
	c := &cobra.Command{
		Use:   "import FILE.p12",
		Short: "Import a PKCS#12 file: your certificate and key into personal, the CAs into intermediate and root",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			data, err := os.ReadFile(args[0])
			if err != nil {
				return certportal.Errorf(certportal.Invalid, "cannot read %s: %v", args[0], pathError(err))
			}
			pw, err := a.readSecret(pwFile, "Password of "+args[0]+": ", false)
			if err != nil {
				return err
			}
			s, err := openClientStore(dir, true)
			if err != nil {
				return err
			}
			a.usePassphrase(s, keys)
			res, err := s.Import(data, pw)
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]entryJSON, 0, len(res))
				for i := range res {
					j := toEntryJSON(&res[i].Entry)
					added := res[i].Added
					j.Added = &added
					out = append(out, j)
				}
				return printJSON(a.stdout, out)
			}
			rows := make([][]string, 0, len(res))
			for _, r := range res {
				what := "added"
				if !r.Added {
					what = "already there"
				}
				rows = append(rows, []string{r.IssuedTo, r.IssuedBy, r.Store, what})
			}
			return printTable(a.stdout, []string{"ISSUED TO", "ISSUED BY", "STORE", ""}, rows)
		},
	}
	a.storeDirFlag(c, &dir)
	a.jsonFlag(c)
	a.keyFlags(c, &keys, true)
	c.Flags().StringVar(&pwFile, "password-file", "", "file holding the PKCS#12 password (- = standard input)")
	return c
}

func (a *app) storeExport() *cobra.Command {
	var keys keyFlags
	var dir, pwFile, out, thumb string
	var legacy, force bool
	c := &cobra.Command{
		Use:   "export",
		Short: "Export a personal certificate with its private key and chain as a password-protected PKCS#12 file",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if _, err := os.Stat(out); err == nil && !force {
				return certportal.Errorf(certportal.Conflict, "%s exists; choose another file or add --force", out)
			}
			s, err := openClientStore(dir, false)
			if err != nil {
				return err
			}
			a.usePassphrase(s, keys)
			if thumb != "" {
				if thumb, err = certportal.NormalizeHex(thumb); err != nil {
					return err
				}
			}
			pw, err := a.readSecret(pwFile, "Password for the new file: ", true)
			if err != nil {
				return err
			}
			data, err := s.Export(thumb, pw, legacy)
			if err != nil {
				return err
			}
			if err := writeFileAtomic(out, data, 0o600); err != nil {
				return certportal.Errorf(certportal.Invalid, "cannot write %s: %v", out, pathError(err))
			}
			fmt.Fprintf(a.stdout, "Wrote %s.\n", out)
			return nil
		},
	}
	a.storeDirFlag(c, &dir)
	a.keyFlags(c, &keys, false)
	c.Flags().StringVar(&out, "out", "", "PKCS#12 file to write")
	c.Flags().StringVar(&thumb, "thumbprint", "", "which personal certificate (default: the only one)")
	c.Flags().StringVar(&pwFile, "password-file", "", "file holding the password for the new file (- = standard input)")
	c.Flags().BoolVar(&legacy, "legacy", false, "3DES/SHA-1 for old systems (macOS Keychain, older Windows)")
	c.Flags().BoolVar(&force, "force", false, "overwrite the output file")
	required(c, "out")
	return c
}

func (a *app) storeList() *cobra.Command {
	var dir, which string
	c := &cobra.Command{
		Use:   "list",
		Short: "List certificates: Issued To, Issued By, Expiration, Serial, Thumbprint",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkStoreName(which); err != nil {
				return err
			}
			s, err := openClientStore(dir, false)
			if err != nil {
				return err
			}
			list, err := s.List(which)
			if err != nil {
				return err
			}
			if a.jsonOut {
				out := make([]entryJSON, 0, len(list))
				for i := range list {
					out = append(out, toEntryJSON(&list[i]))
				}
				return printJSON(a.stdout, out)
			}
			rows := make([][]string, 0, len(list))
			for _, e := range list {
				rows = append(rows, []string{e.Store, e.IssuedTo, e.IssuedBy, e.NotAfter.UTC().Format(time.DateOnly), e.Serial, e.Thumbprint})
			}
			return printTable(a.stdout, []string{"STORE", "ISSUED TO", "ISSUED BY", "EXPIRATION", "SERIAL", "THUMBPRINT"}, rows)
		},
	}
	a.storeDirFlag(c, &dir)
	a.jsonFlag(c)
	c.Flags().StringVar(&which, "store", "", "personal, intermediate or root (default: all three)")
	return c
}

func checkStoreName(s string) error {
	switch s {
	case "", clientstore.Personal, clientstore.Intermediate, clientstore.Root:
		return nil
	}
	return usageError{fmt.Errorf("--store must be personal, intermediate or root, not %q", s)}
}

func (a *app) storeDelete() *cobra.Command {
	var dir, which string
	c := &cobra.Command{
		Use:   "delete THUMBPRINT",
		Short: "Delete a certificate (and its private key) from a store",
		Args:  exactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkStoreName(which); err != nil {
				return err
			}
			s, err := openClientStore(dir, false)
			if err != nil {
				return err
			}
			if err := s.Delete(args[0], which); err != nil {
				return err
			}
			fmt.Fprintln(a.stdout, "Deleted.")
			return nil
		},
	}
	a.storeDirFlag(c, &dir)
	c.Flags().StringVar(&which, "store", "", "personal, intermediate or root (default: whichever holds it)")
	return c
}

func (a *app) whoamiCommand() *cobra.Command {
	var keys keyFlags
	var dir, url, thumb string
	c := &cobra.Command{
		Use:   "whoami",
		Short: "Sign in to the portal with your personal certificate and print the user ID it sees",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s, err := openClientStore(dir, false)
			if err != nil {
				return err
			}
			a.usePassphrase(s, keys)
			res, err := clientstore.Whoami(cmd.Context(), url, s, thumb)
			if err != nil {
				return err
			}
			if a.jsonOut {
				return printJSON(a.stdout, map[string]string{"id": res.ID, "method": res.Method, "serial": res.Serial})
			}
			fmt.Fprintln(a.stdout, res.ID)
			return nil
		},
	}
	a.storeDirFlag(c, &dir)
	a.jsonFlag(c)
	a.keyFlags(c, &keys, false)
	c.Flags().StringVar(&url, "url", "", "the portal's address, e.g. https://localhost:8443")
	c.Flags().StringVar(&thumb, "thumbprint", "", "which personal certificate (default: the one the store's roots trust)")
	required(c, "url")
	return c
}
