package main

import (
	"fmt"
	"strings"
	"time"
)

// row is one line of the results table: a figure, its reference measured
// in the same run, and the goal.
type row struct {
	what       string
	value, ref float64
	unit       string
	goal       string
	met        bool
	missing    string // why the figure could not be measured
}

// report collects the run's figures.
type report struct {
	machine machineInfo
	started time.Time
	elapsed time.Duration
	rows    []row
	sweep   []point
	crl     []crlFigure
	notes   []string
}

func (r *report) add(what string, value, ref float64, unit, goal string, met bool) {
	r.rows = append(r.rows, row{what: what, value: value, ref: ref, unit: unit, goal: goal, met: met})
}

func (r *report) addMissing(what, why string) {
	r.rows = append(r.rows, row{what: what, missing: why})
}

func num(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

// markdown renders the table, the sweep and the notes.
func (r *report) markdown() string {
	var b strings.Builder
	m := r.machine
	fmt.Fprintf(&b, "Measured %s on %d CPUs (%s), %s RAM, Linux %s, %s; the run took %v. Load average (1, 5, 15 min) %s at the start, %s at the end.\n\n",
		r.started.UTC().Format("2006-01-02 15:04 MST"), m.cpus, m.model, m.ram, m.linux, m.goVersion, r.elapsed.Round(time.Second), m.loadBefore, loadavg())
	b.WriteString("| measurement | certportal | reference | ratio | goal | met |\n| --- | ---: | ---: | ---: | --- | --- |\n")
	for _, w := range r.rows {
		if w.missing != "" {
			fmt.Fprintf(&b, "| %s | – | – | – | | not measured: %s |\n", w.what, w.missing)
			continue
		}
		met := "yes"
		if w.goal == "(for reading)" {
			met = "–"
		} else if !w.met {
			met = "**no**"
		}
		fmt.Fprintf(&b, "| %s | %s%s | %s%s | %.2f | %s | %s |\n", w.what, num(w.value), w.unit, num(w.ref), w.unit, w.value/w.ref, w.goal, met)
	}
	b.WriteString("\nSign-in by certificate on new connections (GET /api/whoami, full TLS 1.3 handshake with X25519, P-256 certificates), requests per second:\n\n")
	b.WriteString("| concurrency | certportal | p99 | nginx | p99 | ratio |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n")
	for _, p := range r.sweep {
		fmt.Fprintf(&b, "| %d | %.0f | %v | %.0f | %v | %.2f |\n", p.conc, p.portal, p.portalP99.Round(10*time.Microsecond), p.nginx, p.nginxP99.Round(10*time.Microsecond), p.portal/p.nginx)
	}
	if len(r.crl) > 0 {
		b.WriteString("\nCRLs (certportal = list from SQLite, sign, store, audit, in a process of its own; raw = x509.CreateRevocationList alone):\n\n")
		b.WriteString("| revoked | certportal | peak RSS | raw | peak RSS | CRL size |\n| ---: | ---: | ---: | ---: | ---: | ---: |\n")
		for _, c := range r.crl {
			fmt.Fprintf(&b, "| %d | %v | %d MiB | %v | %d MiB | %.1f MB |\n", c.n, c.full.Round(time.Millisecond), c.fullPeak>>20, c.raw.Round(time.Millisecond), c.rawPeak>>20, float64(c.fullBytes)/1e6)
		}
	}
	if len(r.notes) > 0 {
		b.WriteString("\n")
		for _, n := range r.notes {
			fmt.Fprintf(&b, "- %s\n", n)
		}
	}
	return b.String()
}
