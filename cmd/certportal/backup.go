package main

import (
	"archive/tar"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"
	"unicode/utf8"

	"filippo.io/age"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/internal/atomicfile"
	"github.com/certportal/certportal/sqlite"
)

// A backup is one file: a tar archive (archive/tar) encrypted with age to a
// passphrase (scrypt). The archive holds, in this order:
//
//	certportal.db   a snapshot of the SQLite database (absent for PostgreSQL)
//	ca/...          every file of DATA/ca
//	config.json     the configuration
//	manifest.json   what the archive holds, with sizes and SHA-256s
//
// The database is copied first and DATA/ca after it: a certificate in the
// snapshot then always finds its CA key in the archive, even if a CA
// rollover happened during the backup (an extra CA is harmless, a missing
// one would not be). The outbox is left out: it holds mails already
// delivered, some with temporary passwords.
const (
	backupFormat   = 1
	manifestName   = "manifest.json"
	backupDBName   = "certportal.db"
	backupCAPrefix = caDir + "/"

	// maxBackupEntries and the size limits bound what restore writes to
	// disk from a file it has not yet verified.
	maxBackupEntries = 10000
	maxSmallEntry    = 16 << 20 // config, manifest, one CA file
	maxDBEntry       = 1 << 40  // 1 TiB: far beyond any portal's database
	// minBackupPassphrase: the file holds the root CA's key, and scrypt
	// slows down guessing but cannot save a short passphrase.
	minBackupPassphrase = 12
)

// backupManifest is manifest.json, the last entry of a backup.
type backupManifest struct {
	Format  int       `json:"format"`
	Created time.Time `json:"created"`
	// Version is the certportal version that wrote the backup.
	Version string `json:"certportal_version"`
	// Database is "sqlite" (certportal.db is in the archive) or
	// "postgres" (it is not: pair the file with a pg_dump).
	Database string `json:"database"`
	// Schema is the schema version of the snapshot (0 for postgres).
	Schema int64        `json:"schema,omitempty"`
	Files  []backupFile `json:"files"`
}

// backupFile is one file of the archive as the manifest lists it.
type backupFile struct {
	Name   string `json:"name"`
	Size   int64  `json:"size"`
	SHA256 string `json:"sha256"`
}

func (a *app) backupCommand() *cobra.Command {
	var out, passFile string
	var force bool
	c := &cobra.Command{
		Use:   "backup",
		Short: "Write the database (snapshot taken while serve runs), DATA/ca and the config into one file encrypted to a passphrase",
		Long: `backup writes one encrypted file that restore turns back into a working
data directory: a consistent snapshot of the SQLite database, taken while
the portal keeps running, the CA directory (with the CA's private keys) and
config.json. The file is encrypted with age to a passphrase, read from
--passphrase-file or asked twice on the terminal.

With PostgreSQL the file holds DATA/ca and the config only; take a pg_dump
at the same time (the command prints the exact command line).`,
		Args: exactArgs(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			return a.backup(cmd.Context(), out, passFile, force)
		},
	}
	a.dataFlags(c)
	c.Flags().StringVar(&out, "out", "", "the backup file to write (0600)")
	c.Flags().StringVar(&passFile, "passphrase-file", "", "file holding the passphrase (- = standard input); default: ask on the terminal")
	c.Flags().BoolVar(&force, "force", false, "replace --out if it exists")
	required(c, "out")
	return c
}

// readPassphrase reads the backup passphrase from file, or asks on the
// terminal (twice when confirm is set).
func (a *app) readPassphrase(file string, confirm bool) (string, error) {
	if file == "" {
		f, ok := a.stdin.(*os.File)
		if !ok || !term.IsTerminal(int(f.Fd())) {
			return "", certportal.Errorf(certportal.Invalid, "no passphrase given: use --passphrase-file FILE (- = standard input), or run on a terminal to be asked")
		}
	}
	return a.readSecret(file, "Passphrase of the backup: ", confirm)
}

// sqlitePath returns the database file of a sqlite: DSN (relative paths
// are inside dir), or false for any other database.
func sqlitePath(dir, dsn string) (string, bool) {
	p, ok := strings.CutPrefix(dsn, "sqlite:")
	if !ok {
		return "", false
	}
	if p == "" {
		p = dbFile
	}
	if !filepath.IsAbs(p) {
		p = filepath.Join(dir, p)
	}
	return p, true
}

func (a *app) backup(ctx context.Context, out, passFile string, force bool) error {
	dsn, dbPath, isSQLite, err := a.backupSource()
	if err != nil {
		return err
	}
	if fi, err := os.Stat(out); err == nil {
		if fi.IsDir() {
			return certportal.Errorf(certportal.Invalid, "%s is a directory; --out names the backup file to write", out)
		}
		if !force {
			return certportal.Errorf(certportal.Conflict, "%s exists; choose another name, or add --force to replace it", out)
		}
	}
	recipient, err := a.backupRecipient(passFile)
	if err != nil {
		return err
	}
	outDir := filepath.Dir(out)
	// The snapshot holds password hashes: it goes into a private (0700)
	// directory next to the output, which must have room for it anyway.
	work, err := os.MkdirTemp(outDir, ".certportal-backup-*")
	if err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot write in %s: %v", outDir, pathError(err))
	}
	defer os.RemoveAll(work)
	m := &backupManifest{Format: backupFormat, Created: time.Now().UTC(), Version: buildVersion(), Database: "postgres"}
	snapshot := ""
	if isSQLite {
		if snapshot, err = m.snapshotSQLite(ctx, dbPath, work); err != nil {
			return err
		}
	}
	if err := a.writeBackup(out, force, recipient, m, snapshot); err != nil {
		return err
	}
	// A backup carries the CA's private keys out of DATA/ca: that is a
	// security event, recorded after the file is in place (so it is not in
	// the snapshot itself).
	if err := auditBackup(ctx, a.dataDir, dsn, out); err != nil {
		return certportal.WrapError(certportal.Unavailable, err, "the backup "+out+" was written, but recording it in the audit log failed")
	}
	a.reportBackup(out, m, isSQLite, dsn)
	return nil
}

// backupSource returns the database a backup reads: its DSN, and the
// SQLite file when it is one. A DSN with a password or of another kind is
// refused.
func (a *app) backupSource() (dsn, dbPath string, isSQLite bool, err error) {
	cfg, err := loadConfig(a.dataDir)
	if err != nil {
		return "", "", false, err
	}
	dsn = cfg.DB
	if a.dbURL != "" {
		dsn = a.dbURL
	}
	if err := checkSecretFreeURL("--db", dsn, "PGPASSWORD or ~/.pgpass"); err != nil {
		return "", "", false, err
	}
	dbPath, isSQLite = sqlitePath(a.dataDir, dsn)
	if !isSQLite && !strings.HasPrefix(dsn, "postgres://") && !strings.HasPrefix(dsn, "postgresql://") {
		return "", "", false, certportal.Errorf(certportal.Invalid, "the --db value is not supported: use sqlite:PATH or a postgres:// URL (keyword strings such as host=... are not accepted)")
	}
	return dsn, dbPath, isSQLite, nil
}

// backupRecipient reads the passphrase (twice on a terminal) and returns
// the age recipient it makes.
func (a *app) backupRecipient(passFile string) (age.Recipient, error) {
	pass, err := a.readPassphrase(passFile, true)
	if err != nil {
		return nil, err
	}
	if utf8.RuneCountInString(pass) < minBackupPassphrase {
		return nil, certportal.Errorf(certportal.Invalid, "the passphrase must have at least %d characters: the backup holds the CA's private keys", minBackupPassphrase)
	}
	recipient, err := age.NewScryptRecipient(pass)
	if err != nil {
		return nil, certportal.WrapError(certportal.Invalid, err, "the passphrase cannot be used")
	}
	return recipient, nil
}

// snapshotSQLite writes a consistent copy of the SQLite database into work
// and records its schema in m.
func (m *backupManifest) snapshotSQLite(ctx context.Context, dbPath, work string) (string, error) {
	m.Database = "sqlite"
	db, err := sqlite.Open(ctx, dbPath, false)
	if err != nil {
		return "", err
	}
	defer db.Close()
	if m.Schema, err = db.SchemaVersion(ctx); err != nil {
		return "", err
	}
	snapshot := filepath.Join(work, backupDBName)
	if err := db.Snapshot(ctx, snapshot); err != nil {
		return "", err
	}
	return snapshot, nil
}

// writeBackup writes the encrypted archive (the snapshot, DATA/ca, the
// config and the manifest) to a private temporary file beside out, synced,
// and puts it into place.
func (a *app) writeBackup(out string, force bool, recipient age.Recipient, m *backupManifest, snapshot string) error {
	outDir := filepath.Dir(out)
	f, err := os.CreateTemp(outDir, atomicfile.TempPrefix+filepath.Base(out)+"-*")
	if err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot write in %s: %v", outDir, pathError(err))
	}
	tmp := f.Name()
	defer func() {
		f.Close()
		os.Remove(tmp) // harmless after the file was put into place
	}()
	if err := f.Chmod(0o600); err != nil {
		return certportal.WrapError(certportal.Unavailable, err, "cannot make the backup file private")
	}
	enc, err := age.Encrypt(f, recipient)
	if err != nil {
		return certportal.WrapError(certportal.Internal, err, "the backup could not be encrypted")
	}
	tw := tar.NewWriter(enc)
	if snapshot != "" {
		if err := m.add(tw, backupDBName, snapshot); err != nil {
			return err
		}
	}
	if err := m.addCA(tw, filepath.Join(a.dataDir, caDir)); err != nil {
		return err
	}
	if err := m.add(tw, configFile, filepath.Join(a.dataDir, configFile)); err != nil {
		return err
	}
	if err := m.close(tw); err != nil {
		return err
	}
	for _, step := range []func() error{enc.Close, f.Sync, f.Close} {
		if err := step(); err != nil {
			return writeFailed(out, err)
		}
	}
	return placeFile(tmp, out, force)
}

// reportBackup tells what was written, and for PostgreSQL what else to do.
func (a *app) reportBackup(out string, m *backupManifest, isSQLite bool, dsn string) {
	var size int64
	if fi, err := os.Stat(out); err == nil {
		size = fi.Size()
	}
	fmt.Fprintf(a.stdout, "Wrote %s (%d bytes, encrypted to the passphrase): %s, %d files of %s, %s.\n",
		out, size, m.describeDB(), m.countCA(), filepath.Join(a.dataDir, caDir), configFile)
	if !isSQLite {
		fmt.Fprintf(a.stdout, "The database is in PostgreSQL and not in this file. Take a dump now, so the two match:\n"+
			"  pg_dump --format=custom --file %s '%s'\n"+
			"(the password comes from PGPASSWORD or ~/.pgpass; see docs/deploy.md).\n",
			pgDumpName(out), dsn)
	}
	fmt.Fprintf(a.stdout, "Keep the file and the passphrase apart. Restore with: certportal restore --in %s --data NEW-DIR\n", out)
}

// pgDumpName suggests the name of the pg_dump file that goes with a backup.
func pgDumpName(out string) string {
	return strings.TrimSuffix(out, filepath.Ext(out)) + ".pgdump"
}

func writeFailed(out string, err error) error {
	return certportal.Errorf(certportal.Unavailable, "writing %s failed (%v); check the free space there", out, pathError(err))
}

// placeFile moves the finished tmp to out. Without force a file that
// appeared meanwhile is never replaced.
func placeFile(tmp, out string, force bool) error {
	err := atomicfile.Place(tmp, out, force)
	switch {
	case errors.Is(err, fs.ErrExist):
		return certportal.Errorf(certportal.Conflict, "%s exists; choose another name, or add --force to replace it", out)
	case err != nil:
		return writeFailed(out, err)
	}
	return nil
}

func (m *backupManifest) describeDB() string {
	if m.Database != "sqlite" {
		return "no database (PostgreSQL)"
	}
	return fmt.Sprintf("a database snapshot (schema %d)", m.Schema)
}

func (m *backupManifest) countCA() int {
	n := 0
	for _, f := range m.Files {
		if strings.HasPrefix(f.Name, backupCAPrefix) {
			n++
		}
	}
	return n
}

// add streams the file at path into the archive as name and lists it in
// the manifest.
func (m *backupManifest) add(tw *tar.Writer, name, path string) error {
	if err := checkBackupName(name, false); err != nil {
		return certportal.Errorf(certportal.Invalid, "cannot back up %s: %s", path, certportal.ErrorMessage(err))
	}
	f, err := os.Open(path)
	if err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot read %s: %v", path, pathError(err))
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return certportal.Errorf(certportal.Unavailable, "cannot read %s: %v", path, pathError(err))
	}
	if !fi.Mode().IsRegular() {
		return certportal.Errorf(certportal.Invalid, "cannot back up %s: it is not a regular file", path)
	}
	if limit := entryLimit(name); fi.Size() > limit {
		return certportal.Errorf(certportal.Invalid, "cannot back up %s: it is larger than %d bytes", path, limit)
	}
	hdr := &tar.Header{
		Typeflag: tar.TypeReg, Name: name, Size: fi.Size(),
		Mode: int64(fi.Mode().Perm() & 0o644), ModTime: fi.ModTime().UTC().Truncate(time.Second),
	}
	if err := tw.WriteHeader(hdr); err != nil {
		return certportal.WrapError(certportal.Internal, err, "the backup archive could not be written")
	}
	h := sha256.New()
	// A file that changes size meanwhile makes the copy fail (tar checks
	// the size): files of DATA/ca are replaced by rename, never rewritten.
	n, err := io.Copy(io.MultiWriter(tw, h), io.LimitReader(f, fi.Size()))
	if err != nil || n != fi.Size() {
		return certportal.Errorf(certportal.Unavailable, "%s changed while it was being copied; run the backup again", path)
	}
	m.Files = append(m.Files, backupFile{Name: name, Size: n, SHA256: hex.EncodeToString(h.Sum(nil))})
	return nil
}

// addCA adds every file of the CA directory. Files whose names start with
// a dot are the temporary files of a write in progress and are skipped.
func (m *backupManifest) addCA(tw *tar.Writer, dir string) error {
	return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return certportal.Errorf(certportal.Unavailable, "cannot read %s: %v", p, pathError(err))
		}
		rel, _ := filepath.Rel(dir, p)
		if rel == "." {
			return nil
		}
		if strings.HasPrefix(d.Name(), ".") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		name := backupCAPrefix + filepath.ToSlash(rel)
		if d.IsDir() {
			if err := checkBackupName(name, true); err != nil {
				return certportal.Errorf(certportal.Invalid, "cannot back up %s: %s", p, certportal.ErrorMessage(err))
			}
			hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name + "/", Mode: 0o700, ModTime: time.Now().UTC().Truncate(time.Second)}
			if err := tw.WriteHeader(hdr); err != nil {
				return certportal.WrapError(certportal.Internal, err, "the backup archive could not be written")
			}
			return nil
		}
		return m.add(tw, name, p) // follows a symbolic link to a regular file
	})
}

// close appends the manifest and ends the archive.
func (m *backupManifest) close(tw *tar.Writer) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return certportal.WrapError(certportal.Internal, err, "the backup manifest could not be written")
	}
	hdr := &tar.Header{Typeflag: tar.TypeReg, Name: manifestName, Size: int64(len(b)), Mode: 0o600, ModTime: m.Created.Truncate(time.Second)}
	if err := tw.WriteHeader(hdr); err != nil {
		return certportal.WrapError(certportal.Internal, err, "the backup archive could not be written")
	}
	if _, err := tw.Write(b); err != nil {
		return certportal.WrapError(certportal.Internal, err, "the backup archive could not be written")
	}
	if err := tw.Close(); err != nil {
		return certportal.WrapError(certportal.Internal, err, "the backup archive could not be written")
	}
	return nil
}

// entryLimit is the largest size an archive entry may have.
func entryLimit(name string) int64 {
	if name == backupDBName {
		return maxDBEntry
	}
	return maxSmallEntry
}

// checkBackupName accepts only the names a backup holds: certportal.db,
// config.json, manifest.json, and ca/ with files and directories below it
// whose path elements are made of A-Z a-z 0-9 . _ - and do not start with
// a dot. So no entry can name a path outside the directory being restored
// ("..", absolute paths), a hidden file, or anything unexpected.
func checkBackupName(name string, dir bool) error {
	if !dir {
		switch name {
		case backupDBName, configFile, manifestName:
			return nil
		}
	}
	rest, ok := strings.CutPrefix(name, backupCAPrefix)
	if !ok || rest == "" {
		if dir && name == caDir {
			return nil
		}
		return certportal.Errorf(certportal.Invalid, "%q is not a name a certportal backup holds", name)
	}
	elems := strings.Split(rest, "/")
	if len(elems) > 8 || len(name) > 255 {
		return certportal.Errorf(certportal.Invalid, "%q is nested too deep or too long", name)
	}
	for _, e := range elems {
		if e == "" || e[0] == '.' || strings.IndexFunc(e, func(r rune) bool {
			return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-')
		}) >= 0 {
			return certportal.Errorf(certportal.Invalid, "%q is not a name a certportal backup holds", name)
		}
	}
	return nil
}

// auditBackup appends the backup.created record to the audit log.
func auditBackup(ctx context.Context, dir, dsn, out string) error {
	store, err := openStore(ctx, dir, dsn, false)
	if err != nil {
		return err
	}
	defer store.Close()
	abs, err := filepath.Abs(out)
	if err != nil {
		abs = out
	}
	return store.Update(ctx, func(tx certportal.Tx) error {
		return tx.AppendAudit(ctx, &certportal.AuditEvent{
			Time: time.Now().UTC(), Actor: "admin", Action: certportal.ActionBackup,
			Detail: "encrypted backup with the CA keys written to " + abs, Remote: "cli",
		})
	})
}
