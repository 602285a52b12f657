package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/atomicfile"
	"github.com/certportal/certportal/portal"
)

type initOptions struct {
	hostnames []string
	url       string
	rootCN    string
	issuingCN string
	keyType   string
	listen    string
}

func (a *app) initCommand() *cobra.Command {
	var o initOptions
	c := &cobra.Command{
		Use:   "init",
		Short: "Create the CA hierarchy, the portal's TLS certificate, the configuration and the database",
		Args:  exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			cfg, err := a.initData(cmd.Context(), o)
			if err != nil {
				return err
			}
			fmt.Fprintf(a.stdout, "Created %s: root CA %s, issuing CA %s, TLS certificate for %s.\n",
				a.dataDir, o.rootCN, o.issuingCN, strings.Join(cfg.Hostnames, ", "))
			fmt.Fprintf(a.stdout, "Next: certportal user add --data %s --id ID --email ADDRESS, then certportal serve --data %s\n", a.dataDir, a.dataDir)
			fmt.Fprintf(a.stdout, "For real use, first move the root key off this server: certportal ca root-key export --data %s --out FILE (see docs/deploy.md).\n", a.dataDir)
			return nil
		},
	}
	a.dataFlags(c)
	c.Flags().StringArrayVar(&o.hostnames, "hostname", nil, "host name or IP address of the portal (repeat; default localhost and 127.0.0.1)")
	c.Flags().StringVar(&o.url, "url", "http://localhost:8080", "plain-HTTP base URL written into certificates for the CRL and OCSP")
	c.Flags().StringVar(&o.rootCN, "root-cn", "SOP-RCA", "common name of the root CA")
	c.Flags().StringVar(&o.issuingCN, "issuing-cn", "SOP-ICA1", "common name of the issuing CA")
	c.Flags().StringVar(&o.keyType, "key-type", "p256", "key type of the CA and TLS keys: p256, p384, rsa2048, rsa3072, rsa4096")
	c.Flags().StringVar(&o.listen, "listen", "127.0.0.1:8443", "HTTPS address the portal will listen on (recorded in the config)")
	return c
}

// initData creates a data directory; on any failure it removes what it made.
func (a *app) initData(ctx context.Context, o initOptions) (cfg *Config, err error) {
	c, kt, err := a.initConfig(o)
	if err != nil {
		return nil, err
	}

	dir := a.dataDir
	created, err := claimDir(dir)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			cleanDir(dir, created)
		}
	}()
	c.InstallationID, err = ca.Create(ca.InitOptions{
		Dir: filepath.Join(dir, caDir), Hostnames: c.Hostnames, URL: c.URL,
		RootCN: o.rootCN, IssuingCN: o.issuingCN, KeyType: kt,
	})
	if err != nil {
		return nil, err
	}
	store, err := openStore(ctx, dir, c.DB, true)
	if err != nil {
		return nil, err
	}
	defer store.Close()
	auth, err := ca.Load(filepath.Join(dir, caDir), c.URL)
	if err != nil {
		return nil, err
	}
	svc := portal.New(store, auth, nil, portal.Config{}, nil)
	// The root CRL, while the root key is still in DATA/ca: serve
	// publishes it and never signs it (SPEC.md "Key custody").
	lifetime, err := c.rootCRLLifetime()
	if err != nil {
		return nil, err
	}
	if err = auth.LoadRootKey(); err != nil {
		return nil, err
	}
	_, err = svc.SignRootCRL(ctx, portal.Admin, lifetime)
	auth.DropRootKey()
	if err != nil {
		return nil, err
	}
	if _, err = svc.CRL(ctx, auth.Issuing.Subject.CommonName); err != nil {
		return nil, err
	}
	if _, _, err = loadAuditKey(dir, true); err != nil {
		return nil, err
	}
	b, _ := json.MarshalIndent(c, "", "  ")
	if err = writeFileAtomic(filepath.Join(dir, configFile), append(b, '\n'), 0o600); err != nil {
		return nil, err
	}
	return &c, nil
}

// initConfig checks init's options and returns the configuration they
// make, and the key type of the CAs.
func (a *app) initConfig(o initOptions) (Config, ca.KeyType, error) {
	c := defaultConfig()
	if len(o.hostnames) > 0 {
		c.Hostnames = o.hostnames
	}
	for _, h := range c.Hostnames {
		if h == "" || strings.ContainsAny(h, "/: ") && net.ParseIP(h) == nil {
			return c, "", certportal.Errorf(certportal.Invalid, "%q is not a host name or IP address", h)
		}
	}
	u, perr := url.Parse(o.url)
	if perr != nil || u.Scheme != "http" || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return c, "", certportal.Errorf(certportal.Invalid, "--url must be a plain http:// base URL such as http://portal.example.com (RFC 5280 asks for http for CRLs and OCSP), not %q", o.url)
	}
	c.URL = strings.TrimSuffix(o.url, "/")
	kt, kerr := ca.ParseKeyType(o.keyType)
	if kerr != nil {
		return c, "", kerr
	}
	if o.rootCN == "" || o.issuingCN == "" || o.rootCN == o.issuingCN {
		return c, "", certportal.Errorf(certportal.Invalid, "the root and issuing CA names must be set and differ")
	}
	_, port, serr := net.SplitHostPort(o.listen)
	if serr != nil {
		return c, "", certportal.Errorf(certportal.Invalid, "--listen must be HOST:PORT, not %q", o.listen)
	}
	c.Listen = o.listen
	c.PortalURL = "https://" + hostPort(c.Hostnames[0], port)
	if a.dbURL != "" {
		c.DB = a.dbURL
	}
	if err := checkSecretFreeURL("--db", c.DB, "PGPASSWORD or ~/.pgpass"); err != nil {
		return c, "", err
	}
	return c, kt, nil
}

func hostPort(host, port string) string {
	if port == "443" {
		return maybeBracket(host)
	}
	return net.JoinHostPort(host, port)
}

func maybeBracket(h string) string {
	if strings.Contains(h, ":") {
		return "[" + h + "]"
	}
	return h
}

// claimDir makes sure dir is absent or empty and creates it 0700. It
// reports whether it created the directory itself.
func claimDir(dir string) (bool, error) {
	f, err := os.Open(dir)
	if os.IsNotExist(err) {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return false, certportal.Errorf(certportal.Invalid, "cannot create the data directory %s: %v", dir, pathError(err))
		}
		return true, nil
	}
	if err != nil {
		return false, certportal.Errorf(certportal.Invalid, "cannot open %s: %v", dir, pathError(err))
	}
	defer f.Close()
	if _, err := f.Readdirnames(1); err != io.EOF {
		return false, certportal.Errorf(certportal.Conflict, "%s exists and is not empty; certportal init never touches an existing data directory", dir)
	}
	return false, os.Chmod(dir, 0o700)
}

// cleanDir undoes a failed init: the directory if init created it, else
// only its contents (it was empty before).
func cleanDir(dir string, created bool) {
	if created {
		os.RemoveAll(dir)
		return
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		os.RemoveAll(filepath.Join(dir, e.Name()))
	}
}

// writeFileAtomic writes data to path through a temporary file in the same
// directory, synced, then renamed into place, so readers never see half a file.
func writeFileAtomic(path string, data []byte, perm os.FileMode) error {
	return atomicfile.WriteFile(path, data, perm)
}
