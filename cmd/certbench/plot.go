package main

import (
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"math"
	"os"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// The plot is drawn by hand with image/png and x/image's built-in bitmap
// font: a line chart needs a dozen lines of drawing, not a plotting library.
var (
	colPortal = color.RGBA{0x1f, 0x77, 0xb4, 0xff} // blue
	colNginx  = color.RGBA{0x2c, 0xa0, 0x2c, 0xff} // green
	colAxis   = color.RGBA{0x33, 0x33, 0x33, 0xff}
	colGrid   = color.RGBA{0xdd, 0xdd, 0xdd, 0xff}
)

// writePlot draws requests per second against concurrency (log2 scale) for
// certportal and nginx.
func writePlot(path string, pts []point) error {
	const w, h = 800, 480
	const left, right, top, bottom = 80, 20, 50, 60
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	draw.Draw(img, img.Bounds(), image.White, image.Point{}, draw.Src)
	if len(pts) == 0 {
		return fmt.Errorf("no sweep to plot")
	}
	ymax := 0.0
	for _, p := range pts {
		ymax = math.Max(ymax, math.Max(p.portal, p.nginx))
	}
	ymax = niceCeil(ymax * 1.1)
	x0, x1 := math.Log2(float64(pts[0].conc)), math.Log2(float64(pts[len(pts)-1].conc))
	if x1 == x0 {
		x1 = x0 + 1
	}
	px := func(c int) int {
		return left + int((math.Log2(float64(c))-x0)/(x1-x0)*float64(w-left-right))
	}
	py := func(v float64) int { return h - bottom - int(v/ymax*float64(h-top-bottom)) }
	for i := 0; i <= 5; i++ {
		v := ymax * float64(i) / 5
		y := py(v)
		line(img, left, y, w-right, y, colGrid)
		label(img, 8, y+4, fmt.Sprintf("%7.0f", v), colAxis)
	}
	for _, p := range pts {
		x := px(p.conc)
		line(img, x, top, x, h-bottom, colGrid)
		label(img, x-8, h-bottom+18, fmt.Sprint(p.conc), colAxis)
	}
	line(img, left, h-bottom, w-right, h-bottom, colAxis)
	line(img, left, top, left, h-bottom, colAxis)
	series := func(col color.Color, val func(point) float64) {
		for i, p := range pts {
			x, y := px(p.conc), py(val(p))
			dot(img, x, y, col)
			if i > 0 {
				q := pts[i-1]
				thick(img, px(q.conc), py(val(q)), x, y, col)
			}
		}
	}
	series(colNginx, func(p point) float64 { return p.nginx })
	series(colPortal, func(p point) float64 { return p.portal })
	label(img, left, 20, "Sign-in by client certificate, new TLS connection per request (GET /api/whoami)", colAxis)
	label(img, left, 38, "requests per second", colAxis)
	label(img, w/2-60, h-18, "concurrency (connections)", colAxis)
	thick(img, w-230, 30, w-210, 30, colPortal)
	label(img, w-204, 34, "certportal serve", colPortal)
	thick(img, w-230, 44, w-210, 44, colNginx)
	label(img, w-204, 48, "nginx ssl_verify_client on", colNginx)
	return savePNG(path, img)
}

// savePNG writes img to path as a PNG.
func savePNG(path string, img image.Image) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// niceCeil rounds v up to 1, 2 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 1
	}
	p := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 5, 10} {
		if v <= m*p {
			return m * p
		}
	}
	return 10 * p
}

func label(img *image.RGBA, x, y int, s string, c color.Color) {
	d := &font.Drawer{Dst: img, Src: image.NewUniform(c), Face: basicfont.Face7x13, Dot: fixed.P(x, y)}
	d.DrawString(s)
}

// line draws a one-pixel line (Bresenham).
func line(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	dx, dy := abs(x1-x0), -abs(y1-y0)
	sx, sy := 1, 1
	if x0 > x1 {
		sx = -1
	}
	if y0 > y1 {
		sy = -1
	}
	e := dx + dy
	for {
		img.Set(x0, y0, c)
		if x0 == x1 && y0 == y1 {
			return
		}
		e2 := 2 * e
		if e2 >= dy {
			e += dy
			x0 += sx
		}
		if e2 <= dx {
			e += dx
			y0 += sy
		}
	}
}

func thick(img *image.RGBA, x0, y0, x1, y1 int, c color.Color) {
	for d := -1; d <= 1; d++ {
		line(img, x0, y0+d, x1, y1+d, c)
	}
}

func dot(img *image.RGBA, x, y int, c color.Color) {
	for i := -3; i <= 3; i++ {
		for j := -3; j <= 3; j++ {
			if i*i+j*j <= 9 {
				img.Set(x+i, y+j, c)
			}
		}
	}
}

func abs(v int) int {
	if v < 0 {
		return -v
	}
	return v
}
