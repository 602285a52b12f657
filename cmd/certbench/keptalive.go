package main

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// keptAliveConc is the number of kept-alive connections of the kept-alive
// figures, for certportal and its references alike.
const keptAliveConc = 32

// keptAlive measures GET /api/whoami by client certificate on kept-alive
// connections (the revocation looked up per request) against nginx's
// static answer, then the same on PostgreSQL against the SQLite figure just
// taken: each ratio side by side in one run, seconds apart.
func (r *report) keptAlive(ctx context.Context, o options, fx *fixture, serve, ngx *process) error {
	c := keptAliveConc
	pr, err := load(ctx, fx, serve.addr, "/api/whoami", c, true, o.step, nil, "", 200)
	if err != nil {
		return err
	}
	nr, err := load(ctx, fx, ngx.addr, "/api/whoami", c, true, o.step, nil, "", 200)
	if err != nil {
		return err
	}
	r.add(fmt.Sprintf("Sign-in by certificate, kept-alive connections, c=%d (revocation lookup per request), SQLite / nginx mTLS kept-alive, static answer", c), pr.Rate(), nr.Rate(), "/s", "≥ 0.80", pr.Rate() >= 0.8*nr.Rate())
	r.notes = append(r.notes, fmt.Sprintf("Kept-alive c=%d: certportal (SQLite) p99 %v, nginx p99 %v.", c, pr.Latency.Quantile(0.99).Round(time.Microsecond), nr.Latency.Quantile(0.99).Round(time.Microsecond)))
	what := fmt.Sprintf("Sign-in by certificate, kept-alive connections, c=%d, PostgreSQL (one replica) / the same on SQLite", c)
	_, stop, pserve, pfx, err := startPostgresServe(ctx, o, fx)
	if errors.Is(err, errNoPostgres) {
		r.addMissing(what, err.Error())
		return nil
	}
	if err != nil {
		return err
	}
	defer stop()
	pg, err := load(ctx, pfx, pserve.addr, "/api/whoami", c, true, o.step, nil, "", 200)
	if err != nil {
		return err
	}
	r.add(what, pg.Rate(), pr.Rate(), "/s", "≥ 0.70", pg.Rate() >= 0.7*pr.Rate())
	r.notes = append(r.notes, fmt.Sprintf("Kept-alive c=%d on PostgreSQL: p99 %v.", c, pg.Latency.Quantile(0.99).Round(time.Microsecond)))
	return nil
}
