package web

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/certportal/certportal"
)

// TestCancelledIsNotUnavailable: a request the client cancelled (it closed
// the connection, or its sending side) ends in a store error that says
// "did not answer in time"; the answer says cancelled, not unavailable,
// and the log has no ERROR or WARN line blaming the database.
func TestCancelledIsNotUnavailable(t *testing.T) {
	var logs bytes.Buffer
	s := &Server{Log: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug})), pages: mustParsePages()}
	dbErr := certportal.WrapError(certportal.Unavailable, context.Canceled, "the database did not answer in time; try again")
	for _, path := range []string{"/api/whoami", "/"} {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		r := httptest.NewRequest(http.MethodGet, path, nil).WithContext(ctx)
		w := httptest.NewRecorder()
		s.fail(w, r, dbErr)
		if path == "/api/whoami" && (!strings.Contains(w.Body.String(), `"error":"cancelled"`) || strings.Contains(w.Body.String(), "unavailable")) {
			t.Errorf("%s cancelled: %d %s, want the error cancelled", path, w.Code, w.Body)
		}
		// A live request with the same error is the database's fault.
		w = httptest.NewRecorder()
		s.fail(w, httptest.NewRequest(http.MethodGet, path, nil), dbErr)
		if w.Code != http.StatusServiceUnavailable || strings.Contains(w.Body.String(), "cancelled") {
			t.Errorf("%s not cancelled: %d %s", path, w.Code, w.Body)
		}
	}
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	cancelledLines := 0
	for _, l := range lines {
		if strings.Contains(l, "cancelled by the client") {
			cancelledLines++
			if !strings.Contains(l, "level=DEBUG") {
				t.Errorf("a cancelled request logged above DEBUG: %s", l)
			}
		}
	}
	if cancelledLines != 2 {
		t.Errorf("%d log lines say the client cancelled, want 2:\n%s", cancelledLines, logs.String())
	}
}
