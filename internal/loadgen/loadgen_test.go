package loadgen

import (
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestHistogramQuantiles(t *testing.T) {
	var h Histogram
	for i := 1; i <= 1000; i++ {
		h.Record(time.Duration(i) * time.Millisecond)
	}
	tests := []struct {
		q    float64
		want time.Duration
	}{
		{0.5, 500 * time.Millisecond},
		{0.99, 990 * time.Millisecond},
		{1, 1000 * time.Millisecond},
	}
	for _, tt := range tests {
		got := h.Quantile(tt.q)
		// Buckets are 4 % wide: the answer is the bucket's upper bound.
		if got < tt.want || float64(got) > float64(tt.want)*1.05 {
			t.Errorf("Quantile(%v) = %v, want %v (+5 %%)", tt.q, got, tt.want)
		}
	}
	if h.Count() != 1000 || h.Max() != time.Second {
		t.Errorf("count %d max %v", h.Count(), h.Max())
	}
	var m Histogram
	m.Merge(&h)
	m.Merge(&h)
	if m.Count() != 2000 || m.Quantile(0.5) != h.Quantile(0.5) {
		t.Errorf("merged: count %d p50 %v, want 2000 and %v", m.Count(), m.Quantile(0.5), h.Quantile(0.5))
	}
}

func TestRefusesWhatItMustNotLoad(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
	}{
		{"remote host", Config{URL: "https://192.0.2.1:443/", Requests: 1}},
		{"remote name", Config{URL: "https://example.com/", Requests: 1}},
		{"remote plain http", Config{URL: "http://192.0.2.1:80/", Requests: 1}},
		{"other scheme", Config{URL: "ftp://127.0.0.1:1/", Requests: 1}},
		{"unbounded", Config{URL: "https://127.0.0.1:1/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := Run(context.Background(), tt.cfg); err == nil {
				t.Fatal("Run accepted it")
			}
		})
	}
}

// server is a real TLS server that counts connections and checks the
// group and client certificate of each.
type server struct {
	*httptest.Server
	conns atomic.Int64
	mu    sync.Mutex
	seen  map[tls.CurveID]int
	noCrt atomic.Int64
}

func newServer(t *testing.T) *server {
	s := &server{seen: map[tls.CurveID]int{}}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen[r.TLS.CurveID]++
		s.mu.Unlock()
		if len(r.TLS.PeerCertificates) == 0 {
			s.noCrt.Add(1)
		}
		if r.Method == http.MethodPost {
			if err := r.ParseForm(); err != nil || r.PostForm.Get("id") != "alice" {
				http.Error(w, "bad form", http.StatusBadRequest)
				return
			}
			w.WriteHeader(http.StatusSeeOther)
			return
		}
		w.Write([]byte("hello"))
	}))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			s.conns.Add(1)
		}
	}
	s.TLS = &tls.Config{ClientAuth: tls.RequestClientCert}
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

func TestRunModes(t *testing.T) {
	s := newServer(t)
	client := s.Client().Transport.(*http.Transport).TLSClientConfig
	cert := s.TLS.Certificates[0] // any certificate will do as a client certificate here
	tests := []struct {
		name      string
		cfg       Config
		wantConns int64
	}{
		{"new connections", Config{Concurrency: 4, Requests: 40}, 40},
		{"kept alive", Config{Concurrency: 4, Requests: 40, KeepAlive: true}, 4},
		{"post", Config{Concurrency: 2, Requests: 10, Method: "POST", Body: []byte("id=alice"), ContentType: "application/x-www-form-urlencoded", Expect: http.StatusSeeOther}, 10},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s.conns.Store(0)
			s.mu.Lock()
			clear(s.seen)
			s.mu.Unlock()
			cfg := tt.cfg
			cfg.URL = s.URL + "/x"
			cfg.TLS = &tls.Config{RootCAs: client.RootCAs, Certificates: []tls.Certificate{cert}, CurvePreferences: []tls.CurveID{tls.CurveP256}}
			res, err := Run(context.Background(), cfg)
			if err != nil {
				t.Fatal(err)
			}
			if res.Requests != cfg.Requests || res.Errors != 0 {
				t.Fatalf("%d requests, %d errors (%v); want %d, 0", res.Requests, res.Errors, res.FirstError, cfg.Requests)
			}
			if got := s.conns.Load(); got != tt.wantConns {
				t.Errorf("server saw %d connections, want %d", got, tt.wantConns)
			}
			s.mu.Lock()
			if s.seen[tls.CurveP256] != cfg.Requests || len(s.seen) != 1 {
				t.Errorf("groups seen: %v, want only P-256", s.seen)
			}
			s.mu.Unlock()
			if res.Latency.Count() != uint64(cfg.Requests) || res.Rate() <= 0 {
				t.Errorf("latencies %d, rate %v", res.Latency.Count(), res.Rate())
			}
		})
	}
	if s.noCrt.Load() != 0 {
		t.Errorf("%d requests came without the client certificate", s.noCrt.Load())
	}
}

// TestRunPlainHTTP: an http:// URL is sent without TLS, kept alive on one
// connection per worker (the OCSP responder's plain-HTTP listener).
func TestRunPlainHTTP(t *testing.T) {
	var conns atomic.Int64
	s := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.TLS != nil || r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/ocsp-request" {
			http.Error(w, "want a plain POST", http.StatusBadRequest)
			return
		}
		w.Write([]byte("answer"))
	}))
	s.Config.ConnState = func(c net.Conn, st http.ConnState) {
		if st == http.StateNew {
			conns.Add(1)
		}
	}
	s.Start()
	t.Cleanup(s.Close)
	res, err := Run(context.Background(), Config{URL: s.URL + "/ocsp", Method: "POST", Body: []byte{0x30, 0}, ContentType: "application/ocsp-request", Concurrency: 3, Requests: 30, KeepAlive: true})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 30 || res.Errors != 0 {
		t.Fatalf("%d requests, %d errors (%v); want 30, 0", res.Requests, res.Errors, res.FirstError)
	}
	// At most one connection per worker: 30 requests kept alive. (A worker
	// that found no request left never connects, so fewer is right too.)
	if got := conns.Load(); got < 1 || got > 3 {
		t.Errorf("server saw %d connections for 30 requests, want 1 to 3", got)
	}
}

// TestRunByTime: a run bounded by time records the latency of every
// request it counts, including those of a worker cut off by the deadline.
func TestRunByTime(t *testing.T) {
	s := newServer(t)
	client := s.Client().Transport.(*http.Transport).TLSClientConfig
	for _, conc := range []int{1, 3} {
		res, err := Run(context.Background(), Config{URL: s.URL, Concurrency: conc, Duration: 200 * time.Millisecond, TLS: &tls.Config{RootCAs: client.RootCAs}})
		if err != nil {
			t.Fatal(err)
		}
		if res.Requests == 0 || res.Latency.Count() != uint64(res.Requests) || res.Latency.Quantile(0.99) <= 0 {
			t.Errorf("c=%d: %d requests, %d latencies, p99 %v", conc, res.Requests, res.Latency.Count(), res.Latency.Quantile(0.99))
		}
	}
}

func TestRunCountsWrongStatusAndStopsInTime(t *testing.T) {
	s := newServer(t)
	client := s.Client().Transport.(*http.Transport).TLSClientConfig
	res, err := Run(context.Background(), Config{
		URL: s.URL, Concurrency: 2, Duration: 300 * time.Millisecond, KeepAlive: true,
		TLS: &tls.Config{RootCAs: client.RootCAs}, Expect: http.StatusTeapot,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Requests != 0 || res.Errors == 0 || res.FirstError == nil {
		t.Errorf("wrong status: %d ok, %d errors, first %v; want all errors", res.Requests, res.Errors, res.FirstError)
	}
	if res.Elapsed > 2*time.Second {
		t.Errorf("a 300 ms run took %v", res.Elapsed)
	}
}
