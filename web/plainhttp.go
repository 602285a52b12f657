package web

import (
	"bufio"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// RedirectPlainHTTP wraps the HTTPS listener so that a plain-HTTP request
// sent to it (someone typed http://host:8443/) gets a redirect to the same
// address over HTTPS, not Go's bare "Client sent an HTTP request to an
// HTTPS server". A connection is looked at on its first read, in its own
// goroutine, so a slow client holds up nobody.
func RedirectPlainHTTP(l net.Listener) net.Listener { return &sniffListener{Listener: l} }

type sniffListener struct{ net.Listener }

func (l *sniffListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &sniffConn{Conn: c, br: bufio.NewReader(c)}, nil
}

// sniffConn is a connection whose first byte decides: 0x16 starts a TLS
// handshake record and the connection goes on as TLS; anything else is
// answered as plain HTTP and closed.
type sniffConn struct {
	net.Conn
	br      *bufio.Reader
	checked bool
}

// plainTimeout bounds how long a plain-HTTP request may take to arrive.
const plainTimeout = 5 * time.Second

func (c *sniffConn) Read(p []byte) (int, error) {
	if !c.checked {
		c.checked = true
		b, err := c.br.Peek(1)
		if err != nil {
			return 0, err
		}
		if b[0] != 0x16 {
			c.redirect()
			return 0, io.EOF
		}
	}
	return c.br.Read(p)
}

// redirect reads one plain-HTTP request and answers 301 to its HTTPS URL.
func (c *sniffConn) redirect() {
	_ = c.Conn.SetDeadline(time.Now().Add(plainTimeout))
	req, err := http.ReadRequest(c.br)
	if err != nil {
		return
	}
	host := req.Host
	if host == "" || strings.ContainsAny(host, "/\\@ ") {
		host = c.Conn.LocalAddr().String()
	}
	target := (&url.URL{Scheme: "https", Host: host, Path: req.URL.Path, RawQuery: req.URL.RawQuery}).String()
	body := `<!doctype html><title>Use https</title><p>This portal answers only over HTTPS: <a href="` +
		html.EscapeString(target) + `">` + html.EscapeString(target) + "</a></p>\n"
	_, _ = fmt.Fprintf(c.Conn, "HTTP/1.1 301 Moved Permanently\r\nLocation: %s\r\nContent-Type: text/html; charset=utf-8\r\n"+
		"Cache-Control: no-store\r\nConnection: close\r\nContent-Length: %d\r\n\r\n%s", target, len(body), body)
}
