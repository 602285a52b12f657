package web

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"runtime/debug"
	"time"

	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttpadaptor"
	"golang.org/x/crypto/ocsp"
)

// The plain-HTTP listener (the AIA and CDP URLs in every certificate) is
// where relying parties ask the OCSP responder, many times per
// certificate, so it is served by fasthttp rather than net/http: net/http
// spends some 30 µs of CPU per kept-alive request on this machine class
// against nginx's 24, fasthttp some 18 (docs/BENCHMARKS.md). The OCSP
// requests are answered there directly; every other request (CA
// certificates, CRLs, the pages that lead to the portal) goes through
// fasthttpadaptor to CAHandler, the same net/http handler as before, so
// there is one implementation of each answer. The OCSP answer itself is
// made by ocspReply for both servers.

// Limits of the plain-HTTP listener.
const (
	// plainReadTimeout bounds the arrival of a request, headers and body
	// (net/http had 10 s for the headers and 30 s in all; an OCSP
	// request is at most MaxBody bytes).
	plainReadTimeout = 10 * time.Second
	// plainWriteTimeout bounds sending an answer (a CRL of a million
	// entries is about 50 MB).
	plainWriteTimeout = 60 * time.Second
	// plainIdleTimeout is how long a kept-alive connection may wait for
	// its next request.
	plainIdleTimeout = 2 * time.Minute
	// plainHeaderBytes bounds a request's line and headers (fasthttp's
	// read buffer, held per open connection): an OCSP, CRL or CA
	// certificate request needs a few hundred bytes; longer ones get 431.
	plainHeaderBytes = 16 << 10
	// plainDrainBytes is how much more than MaxBody fasthttp reads of a
	// body before it refuses it: a client that sends a somewhat larger
	// one still reads its 413, as net/http drains 256 KiB. A body larger
	// still is refused before it is read and the connection closed, and
	// such a client may see the connection reset instead.
	plainDrainBytes = 256 << 10
)

// PlainServer returns the server of the plain-HTTP listener; logf gets
// fasthttp's own messages (connections cut short and the like).
func (s *Server) PlainServer(logf func(format string, args ...any)) *fasthttp.Server {
	return &fasthttp.Server{
		Handler:               s.plainHandler(),
		ErrorHandler:          s.plainError,
		NoDefaultServerHeader: true,
		NoDefaultContentType:  true,
		ReadTimeout:           plainReadTimeout,
		WriteTimeout:          plainWriteTimeout,
		IdleTimeout:           plainIdleTimeout,
		ReadBufferSize:        plainHeaderBytes,
		MaxRequestBodySize:    int(s.MaxBody) + plainDrainBytes,
		CloseOnShutdown:       true,
		Logger:                loggerFunc(logf),
	}
}

type loggerFunc func(format string, args ...any)

func (f loggerFunc) Printf(format string, args ...any) { f(format, args...) }

// plainHandler answers POST /ocsp (and /ocsp/) and GET or HEAD
// /ocsp/{request} itself, with the headers wrap gives every answer, and
// hands anything else to CAHandler. A request a browser marks as
// cross-site (Sec-Fetch-Site or Origin) goes to CAHandler too, whose
// cross-origin check then decides, as for every other request.
func (s *Server) plainHandler() fasthttp.RequestHandler {
	other := fasthttpadaptor.NewFastHTTPHandler(s.CAHandler())
	return func(c *fasthttp.RequestCtx) {
		path := c.URI().PathOriginal()
		rest, isOCSP := bytes.CutPrefix(path, []byte("/ocsp"))
		if !isOCSP || (len(rest) > 0 && rest[0] != '/') ||
			c.Request.Header.Peek("Sec-Fetch-Site") != nil || c.Request.Header.Peek("Origin") != nil {
			other(c)
			return
		}
		rest = bytes.TrimPrefix(rest, []byte("/"))
		// fasthttp does not recover a handler's panic: the process would
		// end. As net/http does for every other request, it is logged
		// and the connection closed, here after an internalError answer.
		defer func() {
			if p := recover(); p != nil {
				s.Log.Error("panic answering an OCSP request", "panic", p, "stack", string(debug.Stack()))
				c.Response.Reset()
				s.plainSecurityHeaders(c)
				for _, hv := range ocspNoCache {
					c.Response.Header.Set(hv.key, hv.val[0])
				}
				c.SetStatusCode(http.StatusInternalServerError)
				c.SetBody(ocsp.InternalErrorErrorResponse)
				c.SetConnectionClose()
			}
		}()
		var rep ocspReply
		switch {
		case c.IsPost() && len(rest) == 0 && int64(len(c.PostBody())) > s.MaxBody:
			// Read to its end: the connection stays usable.
			s.plainRefuse(c, http.StatusRequestEntityTooLarge, ocspTooLarge)
			return
		case c.IsPost() && len(rest) == 0:
			rep = s.ocspReply(c, http.MethodPost, c.PostBody(), "")
		case (c.IsGet() || c.IsHead()) && len(rest) > 0:
			rep = s.ocspGetReply(c, string(c.Method()), string(rest), string(c.Request.Header.Peek("If-None-Match")))
		default:
			other(c) // the 404 and 405 pages, and their Allow
			return
		}
		s.plainSecurityHeaders(c)
		h := &c.Response.Header
		for _, hv := range rep.header {
			if hv.key != "Content-Length" { // fasthttp sets it from the body
				h.Set(hv.key, hv.val[0])
			}
		}
		c.SetStatusCode(rep.code)
		if rep.code == http.StatusNotModified {
			c.Response.SkipBody = true
			return
		}
		c.SetBody(rep.body) // HEAD: fasthttp sends the length, not the body
	}
}

// plainSecurityHeaders sets the headers wrap gives every answer.
func (s *Server) plainSecurityHeaders(c *fasthttp.RequestCtx) {
	h := &c.Response.Header
	h.Set("Content-Security-Policy", headerCSP[0])
	h.Set("X-Content-Type-Options", headerNosniff[0])
	h.Set("Referrer-Policy", headerNoReferrer[0])
	h.Set("X-Frame-Options", headerDeny[0])
	if s.HSTS && !isLocal(hostOnly(string(c.Host()))) {
		h.Set("Strict-Transport-Security", headerHSTS[0])
	}
}

// plainError answers a request fasthttp refused before any handler: too
// large a body (only POST /ocsp takes one), too long headers, a request
// it cannot parse, or one that did not arrive in time.
func (s *Server) plainError(c *fasthttp.RequestCtx, err error) {
	code, msg := http.StatusBadRequest, "the request could not be read\n"
	var small *fasthttp.ErrSmallBuffer
	switch {
	case errors.Is(err, fasthttp.ErrBodyTooLarge):
		code, msg = http.StatusRequestEntityTooLarge, ocspTooLarge
	case errors.As(err, &small):
		code, msg = http.StatusRequestHeaderFieldsTooLarge, "the request's headers are too long\n"
	case isTimeout(err):
		code, msg = http.StatusRequestTimeout, "the request did not arrive in time\n"
	}
	s.plainRefuse(c, code, msg)
	c.SetConnectionClose()
}

// plainRefuse answers code with msg as text.
func (s *Server) plainRefuse(c *fasthttp.RequestCtx, code int, msg string) {
	c.Response.Reset()
	c.SetStatusCode(code)
	s.plainSecurityHeaders(c)
	c.SetContentType("text/plain; charset=utf-8")
	c.SetBodyString(msg)
}

// isTimeout reports whether err is a read that ran out of time.
func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}
