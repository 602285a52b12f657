package main

import (
	"image"
	"image/color"
	"image/png"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestNiceCeil(t *testing.T) {
	for _, tt := range []struct{ in, want float64 }{{0, 1}, {7, 10}, {12, 20}, {1540, 2000}, {4100, 5000}, {50000, 50000}} {
		if got := niceCeil(tt.in); got != tt.want {
			t.Errorf("niceCeil(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

// TestPlotAndTable draws a plot and a table from made-up figures and checks
// the PNG decodes with both series in it and the table carries the ratios.
func TestPlotAndTable(t *testing.T) {
	pts := []point{{conc: 1, portal: 700, nginx: 600}, {conc: 4, portal: 1500, nginx: 1200}, {conc: 16, portal: 900, nginx: 500}}
	path := filepath.Join(t.TempDir(), "p.png")
	if err := writePlot(path, pts); err != nil {
		t.Fatal(err)
	}
	b, seen := colorsIn(t, path, map[color.RGBA]string{colPortal: "certportal", colNginx: "nginx"})
	if !seen["certportal"] || !seen["nginx"] || b.Dx() != 800 {
		t.Errorf("plot %v wide, series drawn: %v", b.Dx(), seen)
	}
	r := &report{sweep: pts, started: time.Now()}
	r.add("kept-alive", 10500, 30000, "/s", "≥ 10,000/s", true)
	r.add("p99", 2500, 1000, " ms", "≤ 1.0", false)
	r.addMissing("PostgreSQL", "not reachable")
	md := r.markdown()
	for _, want := range []string{"| kept-alive | 10500/s | 30000/s | 0.35 | ≥ 10,000/s | yes |", "| p99 | 2500 ms | 1000 ms | 2.50 | ≤ 1.0 | **no** |", "not measured: not reachable", "| 4 | 1500 |"} {
		if !strings.Contains(md, want) {
			t.Errorf("the table lacks %q:\n%s", want, md)
		}
	}
}

// TestRatiosPlot draws the ratio bars from made-up rows: one bar per row
// with a ratio goal (none for "for reading" or absolute goals), green when
// met and red when not.
func TestRatiosPlot(t *testing.T) {
	for goal, want := range map[string]float64{"≥ 0.80": 0.8, "≤ 2.0": 2, "≥ 10,000/s": -1, "(for reading)": -1} {
		got, ok := ratioGoal(goal)
		if ok != (want >= 0) || (ok && got != want) {
			t.Errorf("ratioGoal(%q) = %v, %v; want %v", goal, got, ok, want)
		}
	}
	r := &report{}
	r.add("Kept-alive, SQLite / nginx", 21000, 28000, "/s", "≥ 0.80", false)
	r.add("PostgreSQL / SQLite", 15000, 21000, "/s", "≥ 0.70", true)
	r.add("OCSP over HTTPS / raw", 20000, 66000, "/s", "(for reading)", true)
	r.add("kept-alive absolute", 21000, 28000, "/s", "≥ 10,000/s", true)
	path := filepath.Join(t.TempDir(), "r.png")
	if err := writeRatios(path, r.rows); err != nil {
		t.Fatal(err)
	}
	b, seen := colorsIn(t, path, map[color.RGBA]string{colMet: "met", colNotMet: "not met"})
	if b.Dy() != 50+26*2+40 {
		t.Errorf("the plot is %d high, want two bars' worth (%d)", b.Dy(), 50+26*2+40)
	}
	if !seen["met"] || !seen["not met"] {
		t.Errorf("bars drawn: %v, want a green and a red one", seen)
	}
	if err := writeRatios(path, nil); err == nil {
		t.Error("no rows drew a plot")
	}
	// A ratio far past the axis (16×) runs to its end, and the axis stops
	// at axisMax instead of squeezing the other bars.
	r = &report{}
	r.add("OCSP cached / raw", 16000, 1000, "/s", "≥ 1.0", true)
	r.add("Kept-alive, SQLite / nginx", 21000, 28000, "/s", "≥ 0.80", false)
	if err := writeRatios(path, r.rows); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	const w, right, left = 1000, 30, 470
	if c := color.RGBAModel.Convert(img.At(w-right-2, 50+13)).(color.RGBA); c != colMet {
		t.Errorf("the 16× bar does not reach the axis's end: %v there", c)
	}
	// 0.75 of an axis that ends at 3 is a quarter of the plot's width.
	x := left + int(0.75/axisMax*float64(w-left-right))
	if c := color.RGBAModel.Convert(img.At(x-3, 50+26+13)).(color.RGBA); c != colNotMet {
		t.Errorf("the 0.75 bar does not reach %d: %v there", x, c)
	}
	if c := color.RGBAModel.Convert(img.At(x+40, 50+26+13)).(color.RGBA); c == colNotMet {
		t.Errorf("the 0.75 bar runs past %d", x+40)
	}
}

// colorsIn decodes the PNG at path and returns its bounds and which of
// the named colours it holds.
func colorsIn(t *testing.T, path string, names map[color.RGBA]string) (image.Rectangle, map[string]bool) {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	img, err := png.Decode(f)
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	b := img.Bounds()
	for y := b.Min.Y; y < b.Max.Y; y++ {
		for x := b.Min.X; x < b.Max.X; x++ {
			r, g, bl, _ := img.At(x, y).RGBA()
			if n, ok := names[color.RGBA{uint8(r >> 8), uint8(g >> 8), uint8(bl >> 8), 0xff}]; ok {
				seen[n] = true
			}
		}
	}
	return b, seen
}
