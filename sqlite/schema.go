package sqlite

import (
	"io/fs"
	"strconv"
	"strings"
)

// KnownSchemaVersion returns the version of the newest migration embedded
// in this binary: the schema it creates, and the newest it accepts (Open
// refuses a database whose schema is newer). `certportal version` prints
// it, so an administrator can tell before an upgrade or a downgrade
// whether a binary fits a database.
func KnownSchemaVersion() int64 {
	entries, _ := fs.ReadDir(migrations, "migrations") // embedded: cannot fail
	var newest int64
	for _, e := range entries {
		// goose names migrations NNNNN_name.sql.
		digits, _, ok := strings.Cut(e.Name(), "_")
		if !ok {
			continue
		}
		if v, err := strconv.ParseInt(digits, 10, 64); err == nil && v > newest {
			newest = v
		}
	}
	return newest
}
