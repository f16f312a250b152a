package outcomes

import (
	"fmt"
	"html/template"
	"strings"
	"time"
)

// Charts are drawn on the server as SVG: nothing to fetch, nothing to run
// in the page, readable by a screen reader (role="img" with a title and a
// description that says the figures), and the console shows the same
// figures as a table next to them.

// Bar is one bar of a chart.
type Bar struct {
	Label string
	Value int
	Color string // a CSS colour; the palette below has enough contrast on white
}

// Colours with at least 3:1 contrast on white (WCAG 1.4.11 for graphics).
const (
	colorDelivered = "#1a7f37"
	colorFallback  = "#0969da"
	colorFailed    = "#cf222e"
	colorExpired   = "#9a6700"
	colorCancelled = "#6e7781"
	colorDuplicate = "#8250df"
	colorTime      = "#0969da"
)

// OutcomeBars are the ways flows ended, in a fixed order.
func OutcomeBars(c Counts) []Bar {
	return []Bar{
		{"delivered on the first channel", c.DeliveredFirst, colorDelivered},
		{"delivered after a fallback", c.DeliveredAfterFallback, colorFallback},
		{"failed", c.Failed, colorFailed},
		{"expired", c.Expired, colorExpired},
		{"cancelled", c.Cancelled, colorCancelled},
	}
}

// FallbackBars are the fallbacks by reason and the paid duplicates.
func FallbackBars(c Counts) []Bar {
	return []Bar{
		{"fallback on a failure", c.FallbacksOnFailure, colorFailed},
		{"fallback on a timeout", c.FallbacksOnTimeout, colorExpired},
		{"paid duplicates", c.PaidDuplicates, colorDuplicate},
	}
}

// TimeBars is the time-to-outcome histogram.
func TimeBars(c Counts) []Bar {
	bars := make([]Bar, len(c.TimeToOutcome))
	for i, n := range c.TimeToOutcome {
		label := "over " + short(TimeToOutcomeBounds[len(TimeToOutcomeBounds)-1])
		if i < len(TimeToOutcomeBounds) {
			label = "under " + short(TimeToOutcomeBounds[i])
		}
		bars[i] = Bar{label, n, colorTime}
	}
	return bars
}

func short(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%ds", int(d.Seconds()))
	}
	return fmt.Sprintf("%dm", int(d.Minutes()))
}

// HorizontalBars draws labelled horizontal bars, longest = full width, with
// each value written at the end of its bar.
func HorizontalBars(title string, bars []Bar) template.HTML {
	const width, labelW, rowH, barW = 560, 260, 28, 240
	top := 8
	height := top + rowH*len(bars) + 8
	most := 0
	for _, b := range bars {
		most = max(most, b.Value)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 %d %d" width="%d" height="%d" aria-labelledby="%s-t %s-d">`,
		width, height, width, height, id(title), id(title))
	fmt.Fprintf(&sb, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, id(title), esc(title), id(title), esc(describe(bars)))
	for i, b := range bars {
		y := top + i*rowH
		w := 0
		if most > 0 {
			w = b.Value * barW / most
		}
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="14" text-anchor="end" fill="#1f2328">%s</text>`, labelW-8, y+18, esc(b.Label))
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="20" fill="%s"></rect>`, labelW, y+4, max(w, 1), b.Color)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="14" fill="#1f2328">%d</text>`, labelW+max(w, 1)+6, y+18, b.Value)
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// ColumnChart draws vertical bars (a histogram), labels under them.
func ColumnChart(title string, bars []Bar) template.HTML {
	const height, plotH, colW, gap, left = 220, 160, 56, 12, 8
	width := left + len(bars)*(colW+gap)
	most := 0
	for _, b := range bars {
		most = max(most, b.Value)
	}
	var sb strings.Builder
	fmt.Fprintf(&sb, `<svg xmlns="http://www.w3.org/2000/svg" role="img" viewBox="0 0 %d %d" width="%d" height="%d" aria-labelledby="%s-t %s-d">`,
		width, height, width, height, id(title), id(title))
	fmt.Fprintf(&sb, `<title id="%s-t">%s</title><desc id="%s-d">%s</desc>`, id(title), esc(title), id(title), esc(describe(bars)))
	base := 8 + plotH
	for i, b := range bars {
		x := left + i*(colW+gap)
		h := 0
		if most > 0 {
			h = b.Value * (plotH - 20) / most
		}
		h = max(h, 1)
		fmt.Fprintf(&sb, `<rect x="%d" y="%d" width="%d" height="%d" fill="%s"></rect>`, x, base-h, colW, h, b.Color)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="13" text-anchor="middle" fill="#1f2328">%d</text>`, x+colW/2, base-h-4, b.Value)
		fmt.Fprintf(&sb, `<text x="%d" y="%d" font-size="12" text-anchor="middle" fill="#1f2328">%s</text>`, x+colW/2, base+18, esc(b.Label))
	}
	sb.WriteString(`</svg>`)
	return template.HTML(sb.String())
}

// describe says the figures in words, for the SVG's description.
func describe(bars []Bar) string {
	parts := make([]string, len(bars))
	for i, b := range bars {
		parts[i] = fmt.Sprintf("%s: %d", b.Label, b.Value)
	}
	return strings.Join(parts, "; ")
}

// id is an element id made of the title's letters and digits.
func id(title string) string {
	var sb strings.Builder
	sb.WriteString("chart-")
	for _, r := range strings.ToLower(title) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		case sb.Len() > 0 && !strings.HasSuffix(sb.String(), "-"):
			sb.WriteByte('-')
		}
	}
	return strings.TrimSuffix(sb.String(), "-")
}

func esc(s string) string { return template.HTMLEscapeString(s) }
