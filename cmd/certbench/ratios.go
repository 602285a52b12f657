package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"math"
	"strconv"
	"strings"
)

var (
	colMet    = color.RGBA{0x2c, 0xa0, 0x2c, 0xff} // green
	colNotMet = color.RGBA{0xd6, 0x27, 0x28, 0xff} // red
)

// ratioGoal returns the ratio a row's goal names ("≥ 0.80", "≤ 2.0"), and
// whether it is one: rows whose goal is an absolute figure or "for
// reading" are not drawn.
func ratioGoal(goal string) (float64, bool) {
	g := strings.TrimSpace(strings.TrimPrefix(strings.TrimPrefix(goal, "≥"), "≤"))
	if g == goal {
		return 0, false
	}
	v, err := strconv.ParseFloat(g, 64)
	return v, err == nil
}

// writeRatios draws every row with a ratio goal as a horizontal bar (the
// ratio measured in this run against its same-run reference), with a mark
// at the goal: green when met, red when not.
// axisMax is where the ratio plot's axis ends.
const axisMax = 3.0

func writeRatios(path string, rows []row) error {
	type bar struct {
		label       string
		ratio, goal float64
		met         bool
	}
	var bars []bar
	top := 1.0
	for _, r := range rows {
		g, ok := ratioGoal(r.goal)
		if !ok || r.missing != "" || r.ref == 0 {
			continue
		}
		label := strings.NewReplacer("Sign-in by certificate, ", "Cert sign-in, ", "connections, ", "").Replace(r.what)
		if i := strings.IndexAny(label, "(/"); i > 0 {
			label = label[:i]
		}
		label = strings.TrimSuffix(strings.TrimSpace(label), ",")
		if len(label) > 64 {
			label = label[:61] + "..."
		}
		b := bar{label: label, ratio: r.value / r.ref, goal: g, met: r.met}
		bars = append(bars, b)
		top = math.Max(top, math.Max(b.ratio, b.goal))
	}
	if len(bars) == 0 {
		return fmt.Errorf("no ratio to plot")
	}
	// The axis ends at axisMax: a ratio far past every goal (the cached
	// OCSP answers, 16× raw signing) would squeeze the rest into a corner;
	// its bar runs to the edge and its label gives the value.
	top = math.Min(math.Ceil(top*1.1*2)/2, axisMax)
	const w, left, right, rowH, head = 1000, 470, 30, 26, 50
	h := head + rowH*len(bars) + 40
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	px := func(v float64) int { return left + int(v/top*float64(w-left-right)) }
	for v := 0.0; v <= top+1e-9; v += 0.5 {
		x := px(v)
		line(img, x, head-6, x, h-34, colGrid)
		label(img, x-10, h-18, strconv.FormatFloat(v, 'f', 1, 64), colAxis)
	}
	line(img, left, head-6, left, h-34, colAxis)
	for i, b := range bars {
		y := head + i*rowH
		label(img, 8, y+13, b.label, colAxis)
		col := colNotMet
		if b.met {
			col = colMet
		}
		end, text := px(math.Min(b.ratio, top)), strconv.FormatFloat(b.ratio, 'f', 2, 64)
		if b.ratio > top {
			text = "> " + text // past the axis
		}
		draw.Draw(img, image.Rect(left, y+3, end, y+rowH-7), image.NewUniform(col), image.Point{}, draw.Src)
		gx := px(b.goal)
		for d := -1; d <= 1; d++ {
			line(img, gx+d, y, gx+d, y+rowH-4, colAxis)
		}
		lx := end + 6
		if b.ratio > top {
			lx = end - 70 // inside the bar's end, on the plot
		}
		label(img, lx, y+13, text, colAxis)
	}
	label(img, 8, 20, "certportal / its reference measured in the same run (docs/bench-results.md); black mark = goal", colAxis)
	label(img, 8, 36, "green: goal met, red: not met (for time and memory rows the goal is an upper bound)", colAxis)
	return savePNG(path, img)
}
