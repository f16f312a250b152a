package console

import (
	"net/http"
	"strings"

	"github.com/fallbackd/fallback/processor"
)

// Every change is recorded twice: in the store (changed_by is the user,
// changed_at the time of the write) and as one log line, "console
// change", with the user, the action, what it changed and the version it
// wrote. Never a recipient or a param value: the console does not write
// those (a flow's params exist only in requests), and a sender that is a
// phone number is masked like a recipient.
func (s *Server) audit(r *http.Request, action, what string, version int64) {
	s.log.Info("console change", "user", visitorOf(r).user.Name, "action", action, "what", what, "version", version)
}

// auditSenderID is a sender id as the log shows it: a number (a WhatsApp
// Business number, an SMS long code) masked as processor.MaskPhone masks
// a recipient; an alphanumeric sender id or an RCS agent as it is.
func auditSenderID(id string) string {
	digits := strings.TrimPrefix(id, "+")
	if len(digits) >= 6 && strings.Trim(digits, "0123456789") == "" {
		return processor.MaskPhone(id)
	}
	return id
}
