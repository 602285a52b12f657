package web

import (
	"errors"

	"github.com/certportal/certportal/portal"
)

// refusal is what a person reads when the portal refuses them for a
// reason it can name: the one place those words live.
type refusal struct {
	err            error
	title, message string
	links          []link
}

var (
	loginLink  = link{"/login", "Login with ID and password"}
	removeLink = link{"/about/certificate#remove", "How to remove the certificates"}
	checkLink  = link{"/check", "Check this certificate"}
)

// refusals, by the portal's sentinel errors. The certificate ones come
// first: a cancelled account's certificate is refused as "cancelled" of
// the certificate kind.
var refusals = []refusal{
	{portal.ErrCertRevoked, "Your certificate has been revoked",
		"The certificate your browser presented has been revoked, so it can no longer be used to sign in. Change the sign-in method to get a new temporary password, then get a new certificate.",
		[]link{recoverLink, loginLink, checkLink}},
	{portal.ErrCertExpired, "Your certificate has expired",
		"The certificate your browser presented has expired. Change the sign-in method to get a new temporary password, then get a new certificate.",
		[]link{recoverLink, loginLink, checkLink}},
	{portal.ErrCertCancelled, "This account has been cancelled",
		// Recovery cannot help a cancelled account; removing the
		// certificates is what is left to do.
		"The account of the certificate your browser presented has been cancelled, so it can no longer sign in. You can remove its certificates from this computer.",
		[]link{removeLink, checkLink}},
	{portal.ErrCertUnknown, "This certificate cannot sign in",
		"The certificate your browser presented was not issued by this portal, or is no longer the current certificate of its account. Choose another certificate when the browser asks (restart the browser to be asked again), or change the sign-in method.",
		[]link{recoverLink, loginLink, checkLink}},
	{portal.ErrUseCertificate, "Please sign in with your certificate",
		"This account signs in with its certificate, not with a password. Open the portal in the browser where your certificate is installed. If you have lost your certificate or it has been revoked, change the sign-in method first.",
		[]link{recoverLink, checkLink}},
	{portal.ErrPasswordExpired, "Your temporary password has expired",
		"Temporary passwords are valid for a limited time. Ask for a new one: enter your ID and this password on the page below, and a new temporary password will be e-mailed to you.",
		[]link{recoverLink}},
	{portal.ErrCancelled, "This account has been cancelled",
		"This account has been cancelled, so it can no longer sign in. If you think this is a mistake, contact your administrator. You can remove the portal's certificates from this computer.",
		[]link{removeLink}},
}

// refusalOf returns the refusal err names, or nil.
func refusalOf(err error) *refusal {
	for i := range refusals {
		if errors.Is(err, refusals[i].err) {
			return &refusals[i]
		}
	}
	return nil
}

// certReason names why a presented certificate was refused, in the words
// /api/whoami answers with ("" when err is no certificate refusal).
func certReason(err error) string {
	for _, e := range []error{portal.ErrCertRevoked, portal.ErrCertExpired, portal.ErrCertCancelled, portal.ErrCertUnknown} {
		if errors.Is(err, e) {
			return portal.Reason(e)
		}
	}
	return ""
}
