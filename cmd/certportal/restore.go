package main

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"filippo.io/age"
	"github.com/spf13/cobra"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/ca"
	"github.com/certportal/certportal/internal/atomicfile"
	"github.com/certportal/certportal/sqlite"
)

func (a *app) restoreCommand() *cobra.Command {
	var in, passFile string
	c := &cobra.Command{
		Use:   "restore",
		Short: "Recreate a data directory from a backup file; a wrong passphrase or a damaged file restores nothing",
		Long: `restore decrypts a file written by 'certportal backup' and unpacks it into
a temporary directory next to --data, checks it (the config parses, the CA
loads, the database passes SQLite's integrity check, the audit chain
verifies), and only then renames it to --data, which must not exist or be
empty. On any failure nothing is left behind.`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.restore(cmd.Context(), in, passFile)
		},
	}
	c.Flags().StringVar(&a.dataDir, "data", "", "the data directory to create (must not exist, or be empty)")
	c.Flags().StringVar(&in, "in", "", "the backup file")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase (- = standard input); default: ask on the terminal")
	required(c, "in", "data")
	return c
}

// restored is what restore found in a backup, for its report.
type restored struct {
	manifest               *backupManifest
	accounts, certificates int
	auditRecords           int
	movedDB                bool // the config's database path was changed to the restored file
}

func (a *app) restore(ctx context.Context, in, passFile string) (err error) {
	dir := filepath.Clean(a.dataDir)
	if err := checkEmptyOrAbsent(dir); err != nil {
		return err
	}
	f, err := os.Open(in)
	if err != nil {
		return certportal.Errorf(certportal.Invalid, "cannot read the backup %s: %v", in, pathError(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil || !fi.Mode().IsRegular() {
		return certportal.Errorf(certportal.Invalid, "%s is not a backup file", in)
	}
	pass, err := a.readPassphrase(passFile, false)
	if err != nil {
		return err
	}
	identity, err := age.NewScryptIdentity(pass)
	if err != nil {
		return certportal.WrapError(certportal.Invalid, err, "the passphrase cannot be used")
	}

	parent := filepath.Dir(dir)
	if err := os.MkdirAll(parent, 0o700); err != nil {
		return certportal.Errorf(certportal.Invalid, "cannot create %s: %v", parent, pathError(err))
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(dir)+".restore-*")
	if err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot write in %s: %v", parent, pathError(err))
	}
	placed := false
	defer func() {
		if !placed {
			os.RemoveAll(tmp)
		}
	}()

	m, err := unpackBackup(f, fi.Size(), identity, tmp)
	if err != nil {
		return restoreRefused(in, err)
	}
	r, err := verifyRestore(ctx, tmp, dir, m)
	if err != nil {
		return restoreRefused(in, err)
	}
	if err := atomicfile.SyncDir(tmp); err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot write in %s: %v", parent, pathError(err))
	}
	// An empty directory given as --data is replaced (rename cannot move
	// a directory onto another); os.Remove refuses one that filled meanwhile.
	if fi, err := os.Lstat(dir); err == nil && fi.IsDir() {
		if err := os.Remove(dir); err != nil {
			return certportal.Errorf(certportal.Conflict, "%s is no longer empty; nothing was restored", dir)
		}
	}
	if err := os.Rename(tmp, dir); err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot create %s: %v; nothing was restored", dir, pathError(err))
	}
	placed = true
	if err := atomicfile.SyncDir(parent); err != nil {
		return certportal.Errorf(certportal.Unavailable, "%s was restored, but syncing %s failed: %v", dir, parent, pathError(err))
	}
	a.reportRestore(dir, in, r)
	return nil
}

func (a *app) reportRestore(dir, in string, r *restored) {
	m := r.manifest
	fmt.Fprintf(a.stdout, "Restored %s from %s (written %s by certportal %s): %d files of the CA, config.json",
		dir, in, m.Created.Format("2006-01-02 15:04:05 UTC"), m.Version, m.countCA())
	if m.Database == "sqlite" {
		fmt.Fprintf(a.stdout, ", a database with %s and %s whose audit chain of %s is intact.\n",
			plural(r.accounts, "account"), plural(r.certificates, "certificate"), plural(r.auditRecords, "record"))
		if r.movedDB {
			fmt.Fprintf(a.stdout, "The database is now %s; config.json says so.\n", filepath.Join(dir, dbFile))
		}
		fmt.Fprintf(a.stdout, "Start it with: certportal serve --data %s\n", dir)
		return
	}
	fmt.Fprintf(a.stdout, ".\nThe database was in PostgreSQL and is not in the backup: restore the pg_dump taken with it into an empty database\n"+
		"  pg_restore --exit-on-error --no-owner --dbname 'postgres://USER@HOST/DB' %s\n"+
		"and point the config's \"db\" (or --db) at that database before 'certportal serve --data %s'.\n", pgDumpName(in), dir)
}

// restoreRefused phrases a failed restore as one sentence that says
// nothing was restored.
func restoreRefused(in string, err error) error {
	var nomatch *age.NoIdentityMatchError
	switch {
	case errors.As(err, &nomatch):
		return certportal.WrapError(certportal.Unauthorized, err,
			fmt.Sprintf("the passphrase is wrong (or the beginning of %s is damaged); nothing was restored", in))
	case errors.Is(err, errNotBackup):
		return certportal.WrapError(certportal.Invalid, err,
			fmt.Sprintf("%s is not a certportal backup (or its beginning is damaged); nothing was restored", in))
	case errors.Is(err, errDamaged):
		return certportal.WrapError(certportal.Invalid, err,
			fmt.Sprintf("%s is damaged or truncated (it does not decrypt to the end); nothing was restored", in))
	}
	return &certportal.Error{Code: certportal.ErrorCodeOf(err), Err: err,
		Message: fmt.Sprintf("the backup %s does not pass the checks (%s); nothing was restored", in, strings.TrimSuffix(certportal.ErrorMessage(err), "."))}
}

var (
	errNotBackup = errors.New("not an age file")
	errDamaged   = errors.New("the encrypted data does not authenticate")
)

// checkEmptyOrAbsent refuses a data directory that holds anything.
func checkEmptyOrAbsent(dir string) error {
	fi, err := os.Lstat(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return certportal.Errorf(certportal.Invalid, "cannot look at %s: %v", dir, pathError(err))
	}
	if !fi.IsDir() {
		return certportal.Errorf(certportal.Conflict, "%s exists and is not a directory; restore only creates a new data directory", dir)
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return certportal.Errorf(certportal.Invalid, "cannot read %s: %v", dir, pathError(err))
	}
	if len(entries) > 0 {
		return certportal.Errorf(certportal.Conflict, "%s exists and is not empty; restore only creates a new data directory, it never overwrites one", dir)
	}
	return nil
}

// authReader remembers that its reader (age's decrypting reader) failed,
// so an error of the tar reader above it is told apart from damage.
type authReader struct {
	r   io.Reader
	err error
}

func (a *authReader) Read(p []byte) (int, error) {
	n, err := a.r.Read(p)
	if err != nil && err != io.EOF && a.err == nil {
		a.err = err
	}
	return n, err
}

// unpackBackup decrypts the backup and writes its entries into dst (an
// empty private directory), checking every name and size, and returns the
// manifest once every file matches it and the encrypted stream has been
// authenticated to its last byte.
func unpackBackup(src io.Reader, srcSize int64, id age.Identity, dst string) (*backupManifest, error) {
	plain, err := age.Decrypt(src, id)
	if err != nil {
		var nomatch *age.NoIdentityMatchError
		if errors.As(err, &nomatch) {
			return nil, err
		}
		// Truncated header, a header MAC that fails, not an age file.
		return nil, fmt.Errorf("%w: %v", errNotBackup, err)
	}
	// budget is what the archive may still write: an archive stores each
	// byte it holds (sparse entries are refused), so all of them together
	// are never more than the file read.
	u := &unpacker{ar: &authReader{r: plain}, dst: dst, got: map[string]backupFile{}, budget: srcSize}
	tr := tar.NewReader(u.ar)
	for n := 0; ; n++ {
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, u.damaged(err)
		}
		if n >= maxBackupEntries {
			return nil, certportal.Errorf(certportal.Invalid, "it holds more than %d entries", maxBackupEntries)
		}
		if err := u.entry(tr, hdr); err != nil {
			return nil, err
		}
	}
	// The tar end marker may come before age's last chunk: read to the
	// end, so a truncated or altered tail is noticed too.
	if _, err := io.Copy(io.Discard, u.ar); err != nil {
		return nil, u.damaged(err)
	}
	return checkManifest(u.manifest, u.got)
}

// unpacker is the state of unpackBackup.
type unpacker struct {
	ar       *authReader
	dst      string
	got      map[string]backupFile
	manifest []byte
	budget   int64
}

// damaged names a read failure: the age stream does not authenticate or
// ends early (damaged), or the archive inside is malformed.
func (u *unpacker) damaged(err error) error {
	if u.ar.err != nil {
		return fmt.Errorf("%w: %v", errDamaged, u.ar.err)
	}
	if errors.Is(err, io.ErrUnexpectedEOF) {
		return fmt.Errorf("%w: %v", errDamaged, err)
	}
	return certportal.WrapError(certportal.Invalid, err, "the archive inside is malformed")
}

// entry checks one archive entry and writes it below dst (the manifest is
// kept in memory).
func (u *unpacker) entry(tr *tar.Reader, hdr *tar.Header) error {
	if u.manifest != nil {
		return certportal.Errorf(certportal.Invalid, "it holds %q after its manifest", hdr.Name)
	}
	name, isDir := strings.CutSuffix(hdr.Name, "/")
	switch hdr.Typeflag {
	case tar.TypeDir:
		isDir = true
	case tar.TypeReg:
		if isDir {
			return certportal.Errorf(certportal.Invalid, "it holds an unexpected entry %q", hdr.Name)
		}
	default:
		return certportal.Errorf(certportal.Invalid, "it holds %q, which is not a file or a directory", hdr.Name)
	}
	if err := checkBackupName(name, isDir); err != nil || path.Clean(name) != name {
		return certportal.Errorf(certportal.Invalid, "it holds an unexpected entry %q", hdr.Name)
	}
	if _, dup := u.got[name]; dup {
		return certportal.Errorf(certportal.Invalid, "it holds %q twice", name)
	}
	target := filepath.Join(u.dst, filepath.FromSlash(name))
	if isDir {
		if err := os.MkdirAll(target, 0o700); err != nil {
			return certportal.Errorf(certportal.Unavailable, "cannot write the restored files: %v", pathError(err))
		}
		u.got[name] = backupFile{Name: name}
		return nil
	}
	if sparse(hdr) {
		// A sparse entry expands holes of zeros the file does not hold:
		// a small hostile file could fill the disk.
		return certportal.Errorf(certportal.Invalid, "its entry %q is a sparse file, which no backup holds", hdr.Name)
	}
	if limit := entryLimit(name); hdr.Size < 0 || hdr.Size > limit {
		return certportal.Errorf(certportal.Invalid, "its entry %q is larger than %d bytes", name, limit)
	}
	if hdr.Size > u.budget {
		// Truncated, or crafted to fill the disk: either way not one
		// byte of it is written.
		return fmt.Errorf("%w: its entry %q claims %d bytes, more than the file holds", errDamaged, name, hdr.Size)
	}
	u.budget -= hdr.Size
	if name == manifestName {
		b, err := io.ReadAll(tr)
		if err != nil {
			return u.damaged(err)
		}
		u.manifest = b
		return nil
	}
	// Exactly the declared size, whatever the reader would give.
	f, err := writeEntry(io.LimitReader(tr, hdr.Size), target)
	if err != nil {
		if ce := (*certportal.Error)(nil); errors.As(err, &ce) {
			return err
		}
		return u.damaged(err)
	}
	f.Name = name
	u.got[name] = f
	return nil
}

// checkManifest parses the archive's manifest and checks that the files
// unpacked (got) are exactly those it lists, by size and SHA-256.
func checkManifest(manifest []byte, got map[string]backupFile) (*backupManifest, error) {
	if manifest == nil {
		return nil, fmt.Errorf("%w: it ends before its manifest", errDamaged)
	}
	var m backupManifest
	if err := json.NewDecoder(bytes.NewReader(manifest)).Decode(&m); err != nil {
		return nil, certportal.Errorf(certportal.Invalid, "its manifest is not valid JSON")
	}
	if m.Format != backupFormat {
		return nil, certportal.Errorf(certportal.Invalid, "it has format %d, which this certportal (format %d) does not know; restore it with the version that wrote it (%s)", m.Format, backupFormat, m.Version)
	}
	files := 0
	for _, f := range got {
		if f.SHA256 != "" {
			files++
		}
	}
	if files != len(m.Files) {
		return nil, certportal.Errorf(certportal.Invalid, "it holds %d files but its manifest lists %d", files, len(m.Files))
	}
	for _, want := range m.Files {
		if f, ok := got[want.Name]; !ok || f.Size != want.Size || f.SHA256 != want.SHA256 {
			return nil, certportal.Errorf(certportal.Invalid, "%s does not match the manifest", want.Name)
		}
	}
	if (m.Database == "sqlite") != (got[backupDBName].SHA256 != "") || (m.Database != "sqlite" && m.Database != "postgres") {
		return nil, certportal.Errorf(certportal.Invalid, "its database (%q) does not match its contents", m.Database)
	}
	return &m, nil
}

// sparse reports whether a tar entry is a sparse file (GNU type 'S', or the
// PAX GNU.sparse.* records that archive/tar expands).
func sparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// writeEntry writes one restored file, synced and 0600 whatever the archive
// says (it is a key, the database or the config), and returns its size and
// hash.
func writeEntry(r io.Reader, target string) (backupFile, error) {
	if err := os.MkdirAll(filepath.Dir(target), 0o700); err != nil {
		return backupFile{}, certportal.Errorf(certportal.Unavailable, "cannot write the restored files: %v", pathError(err))
	}
	f, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return backupFile{}, certportal.Errorf(certportal.Unavailable, "cannot write the restored files: %v", pathError(err))
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(f, h), r)
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			return backupFile{}, certportal.Errorf(certportal.Unavailable, "cannot write the restored files: %v; check the free space", pathError(err))
		}
		return backupFile{}, err // reading failed: damage
	}
	if err := f.Sync(); err != nil {
		return backupFile{}, certportal.Errorf(certportal.Unavailable, "cannot write the restored files: %v", err)
	}
	return backupFile{Size: n, SHA256: hex.EncodeToString(h.Sum(nil))}, f.Close()
}

// verifyRestore checks an unpacked backup in tmp, which will become dir:
// the config parses, the CA loads, and (SQLite) the database opens, is
// migrated to this binary's schema, passes integrity_check and holds an
// unbroken audit chain. A config whose SQLite database lies elsewhere is
// pointed at the restored file.
func verifyRestore(ctx context.Context, tmp, dir string, m *backupManifest) (*restored, error) {
	r := &restored{manifest: m}
	cfg, err := loadConfig(tmp)
	if err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, "its config.json does not parse")
	}
	auth, err := ca.Load(filepath.Join(tmp, caDir), cfg.URL)
	if err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, "its CA does not load: "+strings.ReplaceAll(certportal.ErrorMessage(err), tmp, dir))
	}
	// serve never reads the root key; a backup made before it was
	// exported holds it, and it must be root.crt's.
	if _, err := os.Stat(filepath.Join(tmp, caDir, ca.RootKeyFile)); err == nil {
		if err := auth.LoadRootKey(); err != nil {
			return nil, certportal.WrapError(certportal.Invalid, err, "its root key does not load: "+strings.ReplaceAll(certportal.ErrorMessage(err), tmp, dir))
		}
		auth.DropRootKey()
	}
	if m.Database != "sqlite" {
		return r, nil
	}
	if p, ok := sqlitePath(dir, cfg.DB); !ok || filepath.Clean(p) != filepath.Join(dir, dbFile) {
		if err := setConfigDB(tmp, "sqlite:"+dbFile); err != nil {
			return nil, err
		}
		r.movedDB = true
	}
	db, err := sqlite.Open(ctx, filepath.Join(tmp, backupDBName), false)
	if err != nil {
		return nil, certportal.WrapError(certportal.ErrorCodeOf(err), err, "its database does not open: "+strings.ReplaceAll(certportal.ErrorMessage(err), tmp, dir))
	}
	defer db.Close()
	if err := db.IntegrityCheck(ctx); err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, "its database is damaged")
	}
	err = db.View(ctx, func(tx certportal.Tx) error {
		accs, err := tx.ListAccounts(ctx)
		if err != nil {
			return err
		}
		certs, err := tx.ListCertificates(ctx, certportal.CertFilter{})
		if err != nil {
			return err
		}
		events, err := tx.ListAudit(ctx, certportal.AuditFilter{})
		if err != nil {
			return err
		}
		if _, err := certportal.VerifyAuditChain(events); err != nil {
			return certportal.WrapError(certportal.Invalid, err, "its audit chain is broken: "+certportal.ErrorMessage(err))
		}
		r.accounts, r.certificates, r.auditRecords = len(accs), len(certs), len(events)
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Close checkpoints the WAL into the file before it is moved.
	if err := db.Close(); err != nil {
		return nil, err
	}
	return r, nil
}

// setConfigDB changes only the "db" field of tmp/config.json, keeping
// every other field as it is (also fields this binary does not know).
func setConfigDB(tmp, db string) error {
	p := filepath.Join(tmp, configFile)
	b, err := os.ReadFile(p)
	if err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot read the restored config.json: %v", pathError(err))
	}
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(b, &fields); err != nil {
		return certportal.Errorf(certportal.Invalid, "its config.json does not parse")
	}
	fields["db"], _ = json.Marshal(db)
	out, err := json.MarshalIndent(fields, "", "  ")
	if err != nil {
		return certportal.WrapError(certportal.Internal, err, "the restored config.json could not be written")
	}
	if err := atomicfile.WriteFile(p, append(out, '\n'), 0o600); err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot write the restored config.json: %v", pathError(err))
	}
	return nil
}

// plural returns "1 account", "2 accounts".
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
