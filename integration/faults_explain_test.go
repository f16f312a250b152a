package integration

// When a flow closes otherwise although its decisive DLR was appended
// before the deadline, the judge asks the instances' debug logs (the fault
// worlds run them at FALLBACK_LOG_LEVEL=debug when FALLBACK_FAULT_EXPLAIN is
// set) what let the deadline fire: the sweeper's round that fired it (its
// cutoff and the lowest watermark), and the first watermark of the DLR's
// partition past the deadline, from a caught-up check (with the end offset
// the group's committed offset reached) or from an applied record (with its
// offset). Compared with the DLR's offset, that names the path: an end
// offset at or below the DLR's says the listed end did not include a record
// appended before the check; an applied offset past it says a record after
// the DLR was applied first.

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// explainOvertaken returns one line per flow saying what let its deadline
// fire before its in-time DLR was applied.
func (w *faultWorld) explainOvertaken(flows []overtaken) []string {
	files, _ := filepath.Glob(filepath.Join(w.logDir, "*.log"))
	var out []string
	for _, o := range flows {
		part := w.names.DLR + "/" + strconv.Itoa(int(o.dlr.partition))
		line := fmt.Sprintf("%s: DLR %s at offset %d of %s appended %s, deadline %s", o.requestID, o.dlr.status,
			o.dlr.offset, part, o.dlr.at.Format("15:04:05.000"), o.deadline.Format("15:04:05.000"))
		fired, mark := "", ""
		var markAt string
		for _, f := range files {
			scanLog(f, func(l string) {
				if fired == "" && strings.Contains(l, `msg="deadlines fired"`) && containsWord(l, o.requestID) {
					fired = fmt.Sprintf("fired by %s at %s (cutoff %s, low watermark %s on %s)", filepath.Base(f), logField(l, "time"),
						flowTime(logField(l, "cutoff")), flowTime(logField(l, "low_watermark")), logField(l, "low_partition"))
				}
				source := ""
				switch {
				case strings.Contains(l, `msg="watermarks caught up"`):
					source = "caught-up check"
				case strings.Contains(l, `msg="watermarks applied"`):
					source = "applied record"
				default:
					return
				}
				for _, p := range strings.Fields(logField(l, "partitions")) {
					ref, rest, ok := strings.Cut(p, ":")
					if !ok || ref != part {
						continue
					}
					var offset, at int64
					if source == "applied record" {
						o, ms, _ := strings.Cut(rest, "@")
						offset, _ = strconv.ParseInt(o, 10, 64)
						at, _ = strconv.ParseInt(ms, 10, 64)
					} else {
						offset, _ = strconv.ParseInt(rest, 10, 64)
						at, _ = strconv.ParseInt(logField(l, "at"), 10, 64)
					}
					if !time.UnixMilli(at).Before(o.deadline) {
						t := logField(l, "time")
						if markAt == "" || t < markAt {
							markAt = t
							what := "end offset"
							if source == "applied record" {
								what = "offset"
							}
							mark = fmt.Sprintf("first watermark past the deadline: %s at %s in %s, to %s, %s %d (the DLR is at %d)",
								source, t, filepath.Base(f), time.UnixMilli(at).Format("15:04:05.000"), what, offset, o.dlr.offset)
						}
					}
				}
			})
		}
		if fired == "" && mark == "" {
			line += "; no debug lines (run with FALLBACK_FAULT_EXPLAIN=1)"
		}
		for _, s := range []string{fired, mark} {
			if s != "" {
				line += "; " + s
			}
		}
		out = append(out, line)
	}
	return out
}

func scanLog(path string, fn func(string)) {
	f, err := os.Open(path)
	if err != nil {
		return
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 16*1024*1024)
	for sc.Scan() {
		fn(sc.Text())
	}
}

// logField is the value of key=value (or key="value") in a slog text line.
func logField(l, key string) string {
	i := strings.Index(l, " "+key+"=")
	if i < 0 {
		if !strings.HasPrefix(l, key+"=") {
			return ""
		}
		i = -1
	}
	v := l[i+len(key)+2:]
	if strings.HasPrefix(v, `"`) {
		if s, err := strconv.QuotedPrefix(v); err == nil {
			u, _ := strconv.Unquote(s)
			return u
		}
	}
	if j := strings.IndexByte(v, ' '); j >= 0 {
		return v[:j]
	}
	return v
}

func containsWord(l, word string) bool {
	for i := 0; ; {
		j := strings.Index(l[i:], word)
		if j < 0 {
			return false
		}
		end := i + j + len(word)
		if end == len(l) || l[end] == ' ' || l[end] == '"' {
			return true
		}
		i = end
	}
}

func flowTime(ms string) string {
	v, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return ms
	}
	return time.UnixMilli(v).Format("15:04:05.000")
}
