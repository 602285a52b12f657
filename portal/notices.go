package portal

import (
	"strings"
	"time"

	"github.com/certportal/certportal"
)

// The notices below are the only wording of the portal's mails (mail/
// only delivers them); they are golden-tested against testdata/. They are
// written for people who sign in to a service with a certificate and are not
// expected to know what one is: short sentences, what happened, what to do,
// and what to do if it was not them. Apart from TemporaryPassword, none
// carries a password.

// notMe closes every notice: a notice is also a warning that someone else
// may be using the account.
const notMe = "If this was not you, or you did not expect this mail, contact your administrator."

// signature ends every mail, so a reader knows it is automatic.
const signature = "This mail was sent automatically by the certificate portal. Please do not reply to it."

// when formats a time for a reader: the day spelled out, in UTC, which is
// named so nobody mistakes it for local time.
func when(t time.Time) string {
	return t.UTC().Format("Monday 2 January 2006 at 15:04 MST")
}

// notice assembles a mail from paragraphs, adding the "not you" line and
// the signature.
func notice(to []string, subject string, paragraphs ...string) certportal.Mail {
	paragraphs = append(paragraphs, notMe, signature)
	return certportal.Mail{
		To:      to,
		Subject: subject,
		Body:    "Hello,\n\n" + strings.Join(paragraphs, "\n\n") + "\n",
	}
}

// TemporaryPasswordMail is the mail that carries a new temporary password, sent
// by the recovery flow ("If your certificate has been revoked") and by an
// administrator's reset. It holds the exact line
// "Temporary password: <password>", says where to sign in and that a new
// certificate comes next, and when the password expires.
func TemporaryPasswordMail(to, userID, password, portalURL string, expires time.Time) certportal.Mail {
	login := strings.TrimRight(portalURL, "/") + "/login"
	return notice([]string{to},
		"Your temporary password for the certificate portal",
		"You asked to change the sign-in method of your user ID "+userID+" (or your administrator did it for you). Your old certificates have been revoked and no longer work, and you now sign in with the temporary password below.",
		"Temporary password: "+password,
		"What to do now:\n"+
			"1. Open "+login+" in your browser. If it asks you to choose a certificate (the \"Identification\" window), press Cancel.\n"+
			"2. Sign in with your user ID "+userID+" and the temporary password above.\n"+
			"3. Request a new certificate on the page that opens, and install it.",
		"The temporary password expires on "+when(expires)+". If it has expired, use the page \"If your certificate has been revoked\" again to get a new one.",
		"Keep this password to yourself: nobody from the portal or your administrator will ever ask you for it.",
	)
}

// NoticeCertificateIssued tells a user that a certificate was issued for
// their account, with the details a certificate manager shows, so they can
// recognise it.
func NoticeCertificateIssued(to, userID, serial, thumbprint string, notAfter time.Time) certportal.Mail {
	return notice([]string{to},
		"A new certificate was issued for your account",
		"A new certificate was issued for your user ID "+userID+". From now on you sign in with this certificate; signing in with your password is no longer possible. Any certificate you had before has been revoked.",
		"The new certificate:\n"+
			"  Issued to:    "+userID+"\n"+
			"  Serial:       "+serial+"\n"+
			"  Thumbprint:   "+thumbprint+"\n"+
			"  Valid until:  "+when(notAfter),
		"To use the portal on another computer, export the certificate together with its private key into a password-protected file and import it there.",
	)
}

// NoticePasswordChanged tells a user that their password was changed.
func NoticePasswordChanged(to, userID string) certportal.Mail {
	return notice([]string{to},
		"Your password was changed",
		"The password of your user ID "+userID+" was changed. Use the new password from now on. Other places where you were signed in have been signed out.",
	)
}

// NoticeLockout tells a user that password sign-in is locked after too many
// wrong passwords, until when, and that the certificate still works.
func NoticeLockout(to, userID string, until time.Time) certportal.Mail {
	return notice([]string{to},
		"Password sign-in to your account is locked for a while",
		"Someone entered a wrong password for your user ID "+userID+" several times, so signing in with a password is locked from that place until "+when(until)+".",
		"If you have your certificate, signing in with it still works. Otherwise wait until the time above and try again, or ask your administrator to lift the lock.",
	)
}

// NoticeCancelled tells a user that their account was cancelled and how to
// clean up the certificates it leaves on their computer.
func NoticeCancelled(to, userID string) certportal.Mail {
	return notice([]string{to},
		"Your account was cancelled",
		"The account with user ID "+userID+" was cancelled. You can no longer sign in, and its certificates have been revoked.",
		"You can now delete from your computer's certificate manager the three certificates the portal gave you: your own certificate (in the personal store), the issuing certificate (in the intermediate store) and the root certificate (in the root store). The portal's \"about certificate\" page shows the root certificate's expiration date, serial number and thumbprint, so you can tell which one to delete.",
	)
}

// NoticeEmailChanged tells a user that the registered e-mail address
// changed. Send it twice, to the old and to the new address, so the owner
// of the old one learns of a change they may not have made.
func NoticeEmailChanged(to, userID, oldEmail, newEmail string) certportal.Mail {
	return notice([]string{to},
		"The e-mail address of your account was changed",
		"The e-mail address registered for your user ID "+userID+" was changed from "+oldEmail+" to "+newEmail+". Mails from the portal, including temporary passwords, now go to "+newEmail+".",
	)
}
