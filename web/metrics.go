package web

import (
	"net/http"
	"net/http/pprof"
)

// MetricsHandler returns the handler of serve's --metrics-listen address:
// GET /metrics answers with metrics (the metrics package's handler), and,
// only when withPprof is set, /debug/pprof/ serves Go's profiler for
// finding where the time goes. Neither is on the public HTTPS listener:
// counts of sign-ins and profiles are for the operator, and the metrics
// address is meant to stay on a private interface.
func MetricsHandler(metrics http.Handler, withPprof bool) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", metrics)
	if withPprof {
		mux.HandleFunc("GET /debug/pprof/", pprof.Index)
		mux.HandleFunc("GET /debug/pprof/cmdline", pprof.Cmdline)
		mux.HandleFunc("GET /debug/pprof/profile", pprof.Profile)
		mux.HandleFunc("GET /debug/pprof/symbol", pprof.Symbol)
		mux.HandleFunc("GET /debug/pprof/trace", pprof.Trace)
	}
	return mux
}
