package console

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/schemas"
)

// seedFlows stores n flows "flow-00000"… titled "Flow n"; every 100th is
// titled "Password reset n".
func seedFlows(t testing.TB, h *harness, n int) {
	for i := range n {
		d := otpFlow(fmt.Sprintf("flow-%05d", i))
		d.Title = fmt.Sprintf("Flow %d", i)
		if i%100 == 0 {
			d.Title = fmt.Sprintf("Password reset %d", i)
		}
		h.store.seedFlow(t, d, "seed")
	}
}

var rowLink = regexp.MustCompile(`<th scope="row"><a href="/flows/([^"]+)">`)

func rows(page string) []string {
	var ids []string
	for _, m := range rowLink.FindAllStringSubmatch(page, -1) {
		ids = append(ids, m[1])
	}
	return ids
}

func TestFlowsPagingAndSearch(t *testing.T) {
	h := newHarness(t)
	seedFlows(t, h, 10_000)
	a := h.login("vera", "vera-pw")

	page := a.get("/flows").Body
	got := rows(page)
	if len(got) != 50 || got[0] != "flow-00000" || got[49] != "flow-00049" {
		t.Fatalf("page 1: %d rows, %v…", len(got), got[:min(3, len(got))])
	}
	if !strings.Contains(text(page), "10000 flows. Showing 1 to 50.") || !strings.Contains(page, `href="/flows?page=2" rel="next"`) {
		t.Errorf("page 1 header or pager:\n%s", text(page)[:400])
	}
	if !strings.Contains(text(page), "Password reset 0 flow-00000") || !strings.Contains(text(page), "whatsapp → sms") {
		t.Errorf("row: title, id, channels")
	}
	page = a.get("/flows?page=200").Body
	if got := rows(page); len(got) != 50 || got[49] != "flow-09999" || strings.Contains(page, `rel="next"`) {
		t.Errorf("last page: %v", got)
	}
	if got := rows(a.get("/flows?page=9999").Body); got[0] != "flow-09950" {
		t.Errorf("past the end shows the last page: %v", got[0])
	}
	// Search over id and title, ignoring case, paged too.
	page = a.get("/flows?q=PASSWORD+reset").Body
	if got := rows(page); len(got) != 50 || got[1] != "flow-00100" {
		t.Errorf("search by title: %v", got[:2])
	}
	if !strings.Contains(text(page), "100 of 10000 flows match") || !strings.Contains(page, `href="/flows?page=2&amp;q=PASSWORD&#43;reset"`) {
		t.Errorf("search header or pager link:\n%s", text(page)[:300])
	}
	if got := rows(a.get("/flows?q=flow-0999").Body); len(got) != 10 || got[9] != "flow-09999" {
		t.Errorf("search by id: %v", got)
	}
	if got := rows(a.get("/flows?q=nothing-like-it").Body); len(got) != 0 {
		t.Errorf("no match: %v", got)
	}
	// A viewer gets no "New flow" button.
	if strings.Contains(page, `href="/flows/new"`) {
		t.Errorf("a viewer is offered a new flow")
	}
}

// TestFlowIDsInURLs: an id with a slash or a space, and the id "new",
// have pages of their own.
func TestFlowIDsInURLs(t *testing.T) {
	h := newHarness(t)
	for _, id := range []string{"a/b c", "new"} {
		h.store.seedFlow(t, otpFlow(id), "cli")
	}
	a := h.login("eddie", "eddie-pw")
	list := a.get("/flows").Body
	for id, url := range map[string]string{"a/b c": "/flows/a%2Fb%20c", "new": "/flows/new?id=new"} {
		if !strings.Contains(list, `href="`+url+`"`) {
			t.Errorf("%q: no link to %s", id, url)
		}
		if r := a.get(url); r.Code != http.StatusOK || !strings.Contains(r.Body, "<h1>Flow OTP "+id+"</h1>") {
			t.Errorf("%s: %d", url, r.Code)
		}
		r := a.post(strings.Replace(url, "?id=new", "", 1)+map[bool]string{true: "?id=new"}[id == "new"],
			mergeForm(editorForm(id, "OTP "+id, otpFlow(id).Steps), "action", "save_draft", "base_version", "1"))
		if d, _ := h.store.Lookup(id); r.Code != http.StatusSeeOther || d.Version != 2 || d.Status != schemas.FlowDraft {
			t.Errorf("save %q: %d %+v", id, r.Code, d)
		}
		if r := a.get(flowSubURL(id, "history")); r.Code != http.StatusOK {
			t.Errorf("history of %q: %d", id, r.Code)
		}
	}
}

func BenchmarkFlowsPage(b *testing.B) {
	h := newHarness(b)
	seedFlows(b, h, 10_000)
	a := h.login("vera", "vera-pw")
	for _, path := range []string{"/flows?page=100", "/flows?q=password&page=2"} {
		b.Run(strings.TrimPrefix(path, "/flows?"), func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if r := a.get(path); r.Code != http.StatusOK {
					b.Fatal(r.Code)
				}
			}
		})
	}
}
