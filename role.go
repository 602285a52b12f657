package certportal

import "strings"

// Role is what an account may do beyond using the portal for itself
// (SPEC.md "Roles and the admin console"). Roles are ordered: an admin may
// do all a helpdesk account may, and more.
type Role string

// The three roles. RoleUser is every account's role until an administrator
// changes it (`certportal user set-role`, or the console).
const (
	RoleUser     Role = "user"
	RoleHelpdesk Role = "helpdesk"
	RoleAdmin    Role = "admin"
)

// Roles lists the roles from the least to the most allowed.
var Roles = []Role{RoleUser, RoleHelpdesk, RoleAdmin}

// rank orders the roles; an unknown role ranks below every known one, so
// a damaged value never grants anything.
func (r Role) rank() int {
	for i, k := range Roles {
		if r == k {
			return i + 1
		}
	}
	return 0
}

// AtLeast reports whether r allows everything min allows.
func (r Role) AtLeast(min Role) bool { return r.rank() > 0 && r.rank() >= min.rank() }

// Valid reports whether r is one of the three roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// ParseRole parses a role name as a person types it (any case, surrounding
// space trimmed).
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", Errorf(Invalid, "unknown role %q; use user, helpdesk or admin", s)
	}
	return r, nil
}

// Audit actions of roles and the admin console (the others are in
// audit.go). The console's own actions (unlock, reset, revoke, cancel, add)
// are audited with the actions of the operations they run, with the
// console user as actor.
const (
	ActionRoleChanged       = "role.changed"
	ActionAccountsImported  = "accounts.imported"  // one record per import, beside each account.created
	ActionInventoryExported = "inventory.exported" // the certificate inventory was downloaded
)
