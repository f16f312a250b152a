package console

import (
	"regexp"
	"strings"
	"testing"

	"github.com/fallbackd/fallback/internal/flowstory"
)

// TestEveryInputHasALabel: on every page, each input, select and textarea
// a person fills has a <label for> naming it, ids are unique, and the
// headings go down one level at a time. (The browser tests run axe-core
// on the pages too.)
func TestEveryInputHasALabel(t *testing.T) {
	h := newHarness(t, func(c *Config) {
		c.Stories = fakeStories{states: map[string]flowstory.Story{"r1": activeStory()}}
	})
	h.store.seedFlow(t, otpFlow("otp"), "cli")
	h.store.seedFlow(t, otpFlow("otp"), "cli")
	a := h.login("ada", "ada-pw")
	field := regexp.MustCompile(`<(input|select|textarea)\b[^>]*>`)
	idAttr := regexp.MustCompile(`\bid="([^"]+)"`)
	heading := regexp.MustCompile(`<h([1-6])\b`)
	for _, path := range []string{"/flows", "/flows/new", "/flows/otp", "/flows/otp/history", "/flows/otp/test?run=1",
		"/flows/otp/delete", "/senders", "/templates", "/templates/preview?channel=sms&name=otp_sms", "/lookup?request_id=r1",
		"/outcomes", "/login"} {
		page := a.get(path).Body
		for _, m := range field.FindAllString(page, -1) {
			if strings.Contains(m, `type="hidden"`) {
				continue
			}
			id := idAttr.FindStringSubmatch(m)
			if id == nil || !strings.Contains(page, `<label for="`+id[1]+`"`) && !strings.Contains(page, `for="`+id[1]+`">`) {
				t.Errorf("%s: no label for %s", path, m)
			}
		}
		seen := map[string]bool{}
		for _, m := range idAttr.FindAllStringSubmatch(page, -1) {
			if seen[m[1]] {
				t.Errorf("%s: id %q twice", path, m[1])
			}
			seen[m[1]] = true
		}
		level := 0
		for _, m := range heading.FindAllStringSubmatch(page, -1) {
			l := int(m[1][0] - '0')
			if l > level+1 {
				t.Errorf("%s: h%d after h%d", path, l, level)
			}
			level = l
		}
		if !strings.Contains(page, `<main id="main"`) || !strings.Contains(page, `<html lang="en">`) {
			t.Errorf("%s: no main landmark or language", path)
		}
	}
}
