package portal

import (
	"strings"
	"time"

	"github.com/certportal/certportal"
)

// WelcomeMail is the mail a new account added by an administrator (the
// console's "Add an account", `certportal user import`) gets: where the
// portal is, the user ID, a temporary password on the exact line
// "Temporary password: <password>", when it expires, and that a
// certificate comes next.
func WelcomeMail(to, userID, password, portalURL string, expires time.Time) certportal.Mail {
	login := strings.TrimRight(portalURL, "/") + "/login"
	return notice([]string{to},
		"Your account on the certificate portal",
		"An account with the user ID "+userID+" was created for you on the certificate portal. You sign in first with the temporary password below, then get a certificate, which is how you sign in from then on.",
		"Temporary password: "+password,
		"What to do now:\n"+
			"1. Open "+login+" in your browser. If it asks you to choose a certificate (the \"Identification\" window), press Cancel.\n"+
			"2. Sign in with your user ID "+userID+" and the temporary password above.\n"+
			"3. Request a certificate on the page that opens, and install it.",
		"The temporary password expires on "+when(expires)+". If it has expired, use the page \"If your certificate has been revoked\" on the portal to get a new one, or ask your administrator.",
		"Keep this password to yourself: nobody from the portal or your administrator will ever ask you for it.",
	)
}
