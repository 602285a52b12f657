package web

import (
	"errors"
	"mime"
	"net/http"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/certportal/certportal"
	"github.com/certportal/certportal/portal"
)

// CookieName is the session cookie. The __Host- prefix makes browsers
// insist on Secure, Path=/ and no Domain, so no sibling host can set it.
const CookieName = "__Host-certportal"

// setSession hands the browser a new session token.
func setSession(w http.ResponseWriter, token string) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: token, Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
		// No Max-Age: a session cookie; the server enforces idle and
		// absolute expiry.
	})
}

// clearSession tells the browser to forget its session token.
func clearSession(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: CookieName, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// OutCookieName marks a browser that signed out. A browser keeps
// presenting its client certificate after a sign-out, so without the
// marker the next GET / would sign it in again; with it, GET / shows the
// "You are signed out" page and signing in by certificate takes a button.
// It lives as long as the browser session, which is also how long most
// browsers remember the certificate chosen.
const OutCookieName = "__Host-certportal-out"

func setSignedOut(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: OutCookieName, Value: "1", Path: "/",
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

// clearSignedOut removes the marker at a sign-in.
func clearSignedOut(w http.ResponseWriter, r *http.Request) {
	if _, err := r.Cookie(OutCookieName); err != nil {
		return
	}
	http.SetCookie(w, &http.Cookie{
		Name: OutCookieName, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
}

func isSignedOut(r *http.Request) bool {
	_, err := r.Cookie(OutCookieName)
	return err == nil
}

// ticketCookie carries a recovery ticket from POST /recover to the
// confirmation page (GET /recover/confirm): never in a URL, and only as
// long as the ticket is valid. Its value is the ticket, a dot and the
// account's ID, which the page names (the ticket is base64url, without
// dots; an ID has only cookie-safe characters).
const ticketCookie = "__Host-certportal-recover"

func setTicket(w http.ResponseWriter, ticket, id string, ttl time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: ticketCookie, Value: ticket + "." + id, Path: "/", MaxAge: int(ttl / time.Second),
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

func clearTicket(w http.ResponseWriter) {
	http.SetCookie(w, &http.Cookie{
		Name: ticketCookie, Value: "", Path: "/", MaxAge: -1,
		Secure: true, HttpOnly: true, SameSite: http.SameSiteStrictMode,
	})
}

// cookieTicket returns the ticket and the ID of the recovery cookie.
func cookieTicket(r *http.Request) (ticket, id string) {
	c, err := r.Cookie(ticketCookie)
	if err != nil {
		return "", ""
	}
	ticket, id, _ = strings.Cut(c.Value, ".")
	if certportal.ValidateID(id) != nil {
		id = ""
	}
	return ticket, id
}

// cookieToken returns the session token the browser sent, or "".
func cookieToken(r *http.Request) string {
	c, err := r.Cookie(CookieName)
	if err != nil {
		return ""
	}
	return c.Value
}

// signedIn is a request's valid session.
type signedIn struct {
	token   string
	sess    *certportal.Session
	account *certportal.Account
}

// session returns the request's session. A missing or ended session
// returns (nil, nil) and clears a stale cookie; only a failure to check
// (such as the database being down) is an error.
func (s *Server) session(w http.ResponseWriter, r *http.Request) (*signedIn, error) {
	token := cookieToken(r)
	if token == "" {
		return nil, nil
	}
	sess, acc, err := s.Svc.Session(r.Context(), token)
	if certportal.ErrorCodeOf(err) == certportal.Unauthorized {
		clearSession(w)
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return &signedIn{token: token, sess: sess, account: acc}, nil
}

// requireSession returns the session of a page that needs one, or answers
// the request itself: a GET goes to the sign-in page, anything else gets a
// 401 page (a form sent after the session ended).
func (s *Server) requireSession(w http.ResponseWriter, r *http.Request) *signedIn {
	si, err := s.session(w, r)
	if err != nil {
		s.fail(w, r, err)
		return nil
	}
	if si != nil {
		return si
	}
	if r.Method == http.MethodGet || r.Method == http.MethodHead {
		http.Redirect(w, r, "/login", http.StatusSeeOther)
		return nil
	}
	s.page(w, r, http.StatusUnauthorized, "message", pageData{
		Title:   "Please sign in",
		Message: "You are not signed in, or your session has ended. Sign in and try again.",
		Links:   []link{{"/login", "Login"}},
	})
	return nil
}

// keep is the session ID that survives when a change ends the account's
// other sessions.
func (si *signedIn) keep() string { return portal.SessionID(si.token) }

// errMalformed is the answer for a form that no browser would send.
func errMalformed() error {
	return certportal.Errorf(certportal.Invalid, "The form could not be read. Go back, reload the page and try again.")
}

// parseForm reads a urlencoded POST body of at most MaxBody bytes and
// returns the values of the named fields. A missing field, a field sent
// twice, invalid UTF-8 or another content type is malformed input (400);
// a larger body is 413. Values come from the body only, never the URL, so
// a password cannot end up in a log of URLs.
func (s *Server) parseForm(w http.ResponseWriter, r *http.Request, required []string, optional ...string) (map[string]string, error) {
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || mt != "application/x-www-form-urlencoded" {
		return nil, errMalformed()
	}
	if err := r.ParseForm(); err != nil { // the body is bounded by the route (routes.go)
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return nil, err
		}
		return nil, errMalformed()
	}
	out := make(map[string]string, len(required)+len(optional))
	get := func(name string, need bool) error {
		v, ok := r.PostForm[name]
		switch {
		case !ok && need:
			return errMalformed()
		case !ok:
			return nil
		case len(v) != 1 || !utf8.ValidString(v[0]):
			return errMalformed()
		}
		out[name] = v[0]
		return nil
	}
	for _, n := range required {
		if err := get(n, true); err != nil {
			return nil, err
		}
	}
	for _, n := range optional {
		if err := get(n, false); err != nil {
			return nil, err
		}
	}
	return out, nil
}
