package console

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"github.com/fallbackd/fallback/schemas"
)

// What the editor's script asks as the person types. The answers are the
// rules' (processor/flow): the script shows them and decides nothing.

// delayCheck is the answer of /check/delay: Message is "" when the delay
// passes.
type delayCheck struct {
	Field   string `json:"field"`
	Message string `json:"message"`
}

// checkDelay answers GET /check/delay?step=N&value=V with the rules'
// message for step N's delay: the steps around it are made valid, so the
// only rejection left to give is the delay's.
func (s *Server) checkDelay(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	n, _ := strconv.Atoi(q.Get("step"))
	n = min(max(n, 0), s.rules.Limits.MaxSteps-1)
	field := fmt.Sprintf("steps[%d].delay_seconds", n)
	out := delayCheck{Field: field}
	raw := strings.TrimSpace(q.Get("value"))
	delay, err := strconv.ParseInt(raw, 10, 32)
	if err != nil {
		out.Message = fmt.Sprintf("%s: %q is not a whole number of seconds", field, clipText(raw))
	} else {
		probe := make([]schemas.Step, max(n+1, 2))
		for i := range probe {
			probe[i] = schemas.Step{Channel: "sms", From: "probe", Template: "probe", DelaySeconds: s.rules.Limits.MinDelaySeconds}
		}
		if _, ok := s.rules.Channels["sms"]; !ok {
			for i := range probe {
				probe[i].Channel = s.rules.Channels.Names()[0]
			}
		}
		probe[n].DelaySeconds = int32(delay)
		if _, rej := s.shapeRules().ValidateSteps(probe); rej != nil && rej.Field == field {
			out.Message = rej.Error()
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// stepFragment answers POST /editor/steps (the editor's whole form) with
// the steps' HTML re-rendered: the script swaps it in when a channel,
// sender, template or mapping changes, so the choices and the preview
// follow without a page load. Nothing is stored.
func (s *Server) stepFragment(w http.ResponseWriter, r *http.Request) {
	f := parseFlowForm(r.PostForm, s.rules.Limits.MaxSteps)
	f.followDefaults(s.rules.Channels)
	view := s.editorView(f, nil, map[string][]string{}, !visitorOf(r).user.Role.Can(RoleEditor))
	s.renderFragment(w, "editor", "steps", view)
}
