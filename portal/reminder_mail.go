package portal

import (
	"strconv"
	"strings"
	"time"

	"github.com/certportal/certportal"
)

// ReminderExpiry is the reminder a user gets some days (30, 7 and 1 by
// default) before their certificate expires. It names the certificate, says
// when it expires, and how to renew it without a password: in the browser
// (sign in with the certificate, press "Renew your certificate") or with
// "certportal store renew". daysLeft is the number of whole days left,
// counted up (a certificate that expires in 36 hours has 2 days left). It
// carries no secret and no "if this was not you" line: nobody did anything.
func ReminderExpiry(to, userID, serial string, notAfter time.Time, daysLeft int, portalURL string) certportal.Mail {
	base := strings.TrimRight(portalURL, "/")
	left := "in " + strconv.Itoa(daysLeft) + " days"
	switch {
	case daysLeft <= 0:
		left = "today"
	case daysLeft == 1:
		left = "within a day"
	}
	paragraphs := []string{
		"The certificate you use to sign in to the portal with your user ID " + userID + " expires " + left + ", on " + when(notAfter) + ". After that it no longer works, so please renew it before then.",
		"The certificate:\n" +
			"  Issued to:    " + userID + "\n" +
			"  Serial:       " + serial + "\n" +
			"  Valid until:  " + when(notAfter),
		"How to renew it (your account password is not needed):\n" +
			"1. Open " + base + "/ in the browser where your certificate is installed, and choose this certificate when the browser asks.\n" +
			"2. On the page that opens, press \"Renew your certificate\", choose a password for the certificate file, and install the file that downloads.\n" +
			"3. Restart the browser and open the portal again: choose the new certificate when asked. The old one stops working once the new one is issued.",
		"If you use the certportal command-line tool, this does the same and puts the new certificate in your certificate store in place of the old one:\n" +
			"  certportal store renew --url " + base,
		"If the certificate has expired already, use the page \"If your certificate has been revoked\" on the portal to get a new one.",
		signature,
	}
	return certportal.Mail{
		To:      []string{to},
		Subject: "Your certificate for the portal expires " + left + ": please renew it",
		Body:    "Hello,\n\n" + strings.Join(paragraphs, "\n\n") + "\n",
	}
}
