package flow

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/fallbackd/fallback/schemas"
)

// The catalog is the configured senders and templates (schemas.Sender and
// schemas.Template on their compacted topics). These are its rules: the
// processor, the CLI and the console all call them, so a step, a sender or
// a template is refused with the same code and words everywhere.

// Rejection codes of the catalog and the flow lifecycle.
const (
	RejectSenderUnknown       = "sender_unknown"
	RejectSenderDisabled      = "sender_disabled"
	RejectTemplateUnknown     = "template_unknown"
	RejectTemplateNotApproved = "template_not_approved"
	RejectCategoryMismatch    = "template_category_mismatch"
	RejectPlaceholderUnmapped = "placeholder_unmapped"
	RejectVariables           = "variables_invalid"
	RejectParamMissing        = "param_missing"
	RejectFailureCodes        = "failure_codes_invalid"
	RejectChannelAmbiguous    = "channel_ambiguous"
	RejectNotPublished        = "flow_not_published"
	// Catalog entries (ValidateSender, ValidateTemplate).
	RejectSenderEntry   = "sender_invalid"
	RejectTemplateEntry = "template_invalid"
)

// Catalog looks up the configured senders and templates.
type Catalog interface {
	Sender(channel, id string) (schemas.Sender, bool)
	Template(channel, name string) (schemas.Template, bool)
	// Empty reports whether the catalog holds no sender and no template.
	Empty() bool
}

// CatalogMode says what a Validator does with the catalog.
type CatalogMode int

const (
	// CatalogAuto enforces the catalog when it holds anything, and is off
	// while it is empty: a deployment without a catalog keeps working.
	CatalogAuto CatalogMode = iota
	// CatalogOff takes every from and template on faith.
	CatalogOff
	// CatalogWarn checks, and reports what enforce would refuse in
	// Start.Warnings, but refuses nothing.
	CatalogWarn
	// CatalogEnforce refuses a step the catalog does not allow.
	CatalogEnforce
)

var catalogModeNames = []string{"auto", "off", "warn", "enforce"}

func (m CatalogMode) String() string {
	if int(m) < len(catalogModeNames) {
		return catalogModeNames[m]
	}
	return "CatalogMode(" + strconv.Itoa(int(m)) + ")"
}

// ParseCatalogMode reads auto, off, warn or enforce.
func ParseCatalogMode(s string) (CatalogMode, error) {
	if i := slices.Index(catalogModeNames, strings.ToLower(strings.TrimSpace(s))); i >= 0 {
		return CatalogMode(i), nil
	}
	return 0, fmt.Errorf("catalog mode %q is not one of %s", s, strings.Join(catalogModeNames, ", "))
}

// catalogMode is the mode in force: off without a catalog, auto resolved.
func (v Validator) catalogMode() CatalogMode {
	switch {
	case v.Catalog == nil:
		return CatalogOff
	case v.CatalogMode == CatalogAuto && v.Catalog.Empty():
		return CatalogOff
	case v.CatalogMode == CatalogAuto:
		return CatalogEnforce
	}
	return v.CatalogMode
}

// ---- templates ----

// placeholderName is what a placeholder, and a variables or fixed_text
// key, may be.
var placeholderName = regexp.MustCompile(`^[A-Za-z0-9_]{1,64}$`)

// nextPlaceholder finds the first placeholder in body: "{{", the name
// (letters, digits, _) with optional spaces around it, "}}". It returns the
// name and the placeholder's bounds; start < 0 when there is none. Braces
// around anything else are text. Written by hand: it runs for every step
// of every request, where a regexp cost a few microseconds.
func nextPlaceholder(body string) (name string, start, end int) {
	for from := 0; ; {
		i := strings.Index(body[from:], "{{")
		if i < 0 {
			return "", -1, -1
		}
		i += from
		j := i + 2
		for j < len(body) && body[j] == ' ' {
			j++
		}
		k := j
		for k < len(body) && isNameByte(body[k]) {
			k++
		}
		m := k
		for m < len(body) && body[m] == ' ' {
			m++
		}
		if k > j && strings.HasPrefix(body[m:], "}}") {
			return body[j:k], i, m + 2
		}
		from = i + 1
	}
}

func isNameByte(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '_'
}

// Placeholders returns a template body's placeholders in the order a send
// fills them: positional ones ({{1}}, {{2}}...) by number, named ones in
// the order they first appear. Positional placeholders must be numbered
// from 1 without gaps (as WhatsApp requires), and a body uses one kind.
func Placeholders(body string) ([]string, error) {
	var named, positional []string
	maxPos := 0
	for rest := body; ; {
		name, _, end := nextPlaceholder(rest)
		if end < 0 {
			break
		}
		rest = rest[end:]
		if n, err := strconv.Atoi(name); err == nil && strconv.Itoa(n) == name {
			if n < 1 {
				return nil, fmt.Errorf("{{%s}}: positional placeholders are numbered from 1", name)
			}
			if !slices.Contains(positional, name) {
				positional = append(positional, name)
				maxPos = max(maxPos, n)
			}
			continue
		}
		if !slices.Contains(named, name) {
			named = append(named, name)
		}
	}
	switch {
	case len(named) > 0 && len(positional) > 0:
		return nil, fmt.Errorf("mixes positional ({{%s}}) and named ({{%s}}) placeholders", positional[0], named[0])
	case len(positional) > 0:
		if maxPos != len(positional) {
			return nil, fmt.Errorf("positional placeholders must be {{1}} to {{%d}} without gaps", len(positional))
		}
		for i := range positional {
			positional[i] = strconv.Itoa(i + 1)
		}
		return positional, nil
	}
	return named, nil
}

// isPositional reports whether a placeholder is a number ({{1}}): such a
// placeholder names no param, so a flow must map it.
func isPositional(name string) bool {
	return name != "" && strings.Trim(name, "0123456789") == ""
}

// Render fills a template body's placeholders from values, for a preview.
// A placeholder without a value stays as it is and is returned in missing.
func Render(body string, values map[string]string) (text string, missing []string) {
	var b strings.Builder
	for rest := body; ; {
		name, start, end := nextPlaceholder(rest)
		if end < 0 {
			b.WriteString(rest)
			return b.String(), missing
		}
		b.WriteString(rest[:start])
		if v, ok := values[name]; ok {
			b.WriteString(v)
		} else {
			b.WriteString(rest[start:end])
			if !slices.Contains(missing, name) {
				missing = append(missing, name)
			}
		}
		rest = rest[end:]
	}
}

// StepValues are the values a step's template is filled with: each
// placeholder's mapped param or fixed text, from a request's params. A
// param the request lacks gives "". For a preview with sample params.
func StepValues(step StepDef, placeholders []string, params map[string]string) map[string]string {
	out := make(map[string]string, len(placeholders))
	for i, a := range step.Args {
		if i < len(placeholders) {
			out[placeholders[i]] = a.value(params)
		}
	}
	return out
}

// Arg is where a template placeholder's value comes from: a request param,
// or fixed text when Fixed.
type Arg struct {
	Param string `json:"p,omitempty"`
	Text  string `json:"x,omitempty"`
	Fixed bool   `json:"f,omitempty"`
}

func (a Arg) value(params map[string]string) string {
	if a.Fixed {
		return a.Text
	}
	return params[a.Param]
}

// render is the template params of a step's send, in the template's order.
func render(args []Arg, params map[string]string) []string {
	if len(args) == 0 {
		return nil
	}
	out := make([]string, len(args))
	for i, a := range args {
		out[i] = a.value(params)
	}
	return out
}

// ---- catalog entries ----

// ValidateSender checks a sender before it is written to the catalog.
func (v Validator) ValidateSender(s schemas.Sender) *Rejection {
	spec, ok := v.Channels[s.Channel]
	if !ok {
		return reject(RejectUnknownChannel, "channel", "%q is not one of %s", clip(s.Channel), strings.Join(v.Channels.Names(), ", "))
	}
	if spec.SenderID != nil && !spec.SenderID.MatchString(s.ID) {
		return reject(RejectSenderEntry, "id", "%q is not %s", clip(s.ID), spec.SenderIDRule)
	}
	if !printable(s.ID) {
		return reject(RejectSenderEntry, "id", "is required (printable)")
	}
	if s.Status != schemas.SenderActive && s.Status != schemas.SenderDisabled {
		return reject(RejectSenderEntry, "status", "%q is not %q or %q", clip(s.Status), schemas.SenderActive, schemas.SenderDisabled)
	}
	for _, f := range [...]struct{ name, value string }{{"id", s.ID}, {"label", s.Label}, {"changed_by", s.ChangedBy}} {
		if r := v.checkLength(f.name, f.value); r != nil {
			return r
		}
	}
	if s.Label != "" && !printable(s.Label) {
		return reject(RejectSenderEntry, "label", "must be printable")
	}
	if !printable(s.ChangedBy) {
		return reject(RejectSenderEntry, "changed_by", "is required (who makes the change)")
	}
	return nil
}

// ValidateTemplate checks a template before it is written to the catalog.
func (v Validator) ValidateTemplate(t schemas.Template) *Rejection {
	spec, ok := v.Channels[t.Channel]
	if !ok {
		return reject(RejectUnknownChannel, "channel", "%q is not one of %s", clip(t.Channel), strings.Join(v.Channels.Names(), ", "))
	}
	for _, f := range [...]struct{ name, value string }{{"name", t.Name}, {"language", t.Language}, {"category", t.Category},
		{"provider_template_id", t.ProviderTemplateID}, {"sender", t.Sender}, {"changed_by", t.ChangedBy}} {
		if r := v.checkLength(f.name, f.value); r != nil {
			return r
		}
	}
	if !printable(t.Name) || strings.Contains(t.Name, "/") {
		return reject(RejectTemplateEntry, "name", "is required (printable, no /)")
	}
	if len(spec.KnownCategories) > 0 && !slices.Contains(spec.KnownCategories, t.Category) {
		return reject(RejectTemplateEntry, "category", "%q is not a %s category (%s)", clip(t.Category), t.Channel, strings.Join(spec.KnownCategories, ", "))
	}
	switch t.Status {
	case schemas.TemplateApproved, schemas.TemplatePending, schemas.TemplateRejected:
	default:
		return reject(RejectTemplateEntry, "status", "%q is not %s, %s or %s", clip(t.Status),
			schemas.TemplateApproved, schemas.TemplatePending, schemas.TemplateRejected)
	}
	if t.Body == "" || len(t.Body) > v.Limits.MaxMapBytes || !utf8.ValidString(t.Body) {
		return reject(RejectTemplateEntry, "body", "is required: text of at most %d bytes", v.Limits.MaxMapBytes)
	}
	if _, err := Placeholders(t.Body); err != nil {
		return reject(RejectTemplateEntry, "body", "%v", err)
	}
	if t.Sender != "" && spec.SenderID != nil && !spec.SenderID.MatchString(t.Sender) {
		return reject(RejectTemplateEntry, "sender", "%q is not %s", clip(t.Sender), spec.SenderIDRule)
	}
	if !printable(t.ChangedBy) {
		return reject(RejectTemplateEntry, "changed_by", "is required (who makes the change)")
	}
	return nil
}

// ---- steps against the catalog ----

// checkMapping checks a step's variables and fixed_text as written, with or
// without a catalog: placeholder names for keys, param names for values,
// no placeholder in both.
func (v Validator) checkMapping(i int, s schemas.Step) *Rejection {
	if len(s.Variables) == 0 && len(s.FixedText) == 0 {
		return nil
	}
	field := fmt.Sprintf("steps[%d].", i)
	if r := v.checkMap(field+"variables", RejectVariables, s.Variables); r != nil {
		return r
	}
	if r := v.checkMap(field+"fixed_text", RejectVariables, s.FixedText); r != nil {
		return r
	}
	for _, m := range [...]struct {
		name   string
		values map[string]string
	}{{"variables", s.Variables}, {"fixed_text", s.FixedText}} {
		for k := range m.values {
			if !placeholderName.MatchString(k) {
				return reject(RejectVariables, field+m.name, "key %q is not a placeholder name (letters, digits, _)", clip(k))
			}
		}
	}
	for k, p := range s.Variables {
		if _, both := s.FixedText[k]; both {
			return reject(RejectVariables, field+"variables", "{{%s}} is in variables and fixed_text: give one", clip(k))
		}
		if !printable(p) || len(p) > v.Limits.MaxKeyBytes {
			return reject(RejectVariables, field+"variables["+clip(k)+"]", "must name a request param (printable, at most %d bytes)", v.Limits.MaxKeyBytes)
		}
	}
	return nil
}

// checkFailureCodes checks and normalises (upper case, trimmed) a step's
// failure codes.
func (v Validator) checkFailureCodes(i int, codes []string) ([]string, *Rejection) {
	if len(codes) == 0 {
		return nil, nil
	}
	field := fmt.Sprintf("steps[%d].failure_codes", i)
	if len(codes) > v.Limits.MaxEntries {
		return nil, reject(RejectFailureCodes, field, "at most %d codes, got %d", v.Limits.MaxEntries, len(codes))
	}
	out := make([]string, 0, len(codes))
	for _, c := range codes {
		c = strings.ToUpper(strings.TrimSpace(c))
		if !printable(c) || len(c) > v.Limits.MaxKeyBytes {
			return nil, reject(RejectFailureCodes, field, "each code must be printable, 1 to %d bytes", v.Limits.MaxKeyBytes)
		}
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out, nil
}

// checkCatalog checks step i (channel resolved, category as given) against
// the catalog and fills in what its send needs: the template's category,
// language, provider id and the args in the template's order. A step the
// catalog does not allow is refused; the caller decides whether that
// refuses the request (enforce) or is a warning.
func (v Validator) checkCatalog(i int, s schemas.Step, def *StepDef) *Rejection {
	field := func(name string) string { return fmt.Sprintf("steps[%d].%s", i, name) }
	sender, ok := v.Catalog.Sender(def.Channel, def.From)
	switch {
	case !ok:
		return reject(RejectSenderUnknown, field("from"), "no %s sender %q in the catalog (fallback senders list)", def.Channel, clip(def.From))
	case sender.Status != schemas.SenderActive:
		return reject(RejectSenderDisabled, field("from"), "%s sender %q is %s", def.Channel, clip(def.From), clip(sender.Status))
	}
	t, ok := v.Catalog.Template(def.Channel, def.Template)
	switch {
	case !ok:
		return reject(RejectTemplateUnknown, field("template"), "no %s template %q in the catalog (fallback templates list)", def.Channel, clip(def.Template))
	case t.Status != schemas.TemplateApproved:
		return reject(RejectTemplateNotApproved, field("template"), "%s template %q is %s, not approved", def.Channel, clip(def.Template), clip(t.Status))
	case t.Sender != "" && t.Sender != def.From:
		return reject(RejectTemplateNotApproved, field("template"), "%s template %q is approved for sender %q only, not %q",
			def.Channel, clip(def.Template), clip(t.Sender), clip(def.From))
	}
	category := strings.ToLower(t.Category)
	if def.TemplateCategory != "" && def.TemplateCategory != category {
		return reject(RejectCategoryMismatch, field("template_category"), "%q, but %s template %q is of category %q in the catalog",
			clip(s.TemplateCategory), def.Channel, clip(def.Template), clip(t.Category))
	}
	placeholders, err := Placeholders(t.Body)
	if err != nil { // the catalog's writers refuse such a body; a record from elsewhere may have one
		return reject(RejectTemplateNotApproved, field("template"), "%s template %q: body %v", def.Channel, clip(def.Template), err)
	}
	for _, m := range [...]struct {
		name string
		keys map[string]string
	}{{"variables", s.Variables}, {"fixed_text", s.FixedText}} {
		for k := range m.keys {
			if !slices.Contains(placeholders, k) {
				return reject(RejectVariables, field(m.name), "template %s has no placeholder {{%s}}", clip(def.Template), clip(k))
			}
		}
	}
	args := make([]Arg, len(placeholders))
	for j, p := range placeholders {
		if text, ok := s.FixedText[p]; ok {
			args[j] = Arg{Text: text, Fixed: true}
			continue
		}
		param, ok := s.Variables[p]
		if !ok && isPositional(p) {
			return reject(RejectPlaceholderUnmapped, field("variables"), "template %s needs {{%s}} mapped to a request param or fixed text",
				clip(def.Template), p)
		}
		if !ok {
			param = p // a named placeholder takes the param of its name
		}
		args[j] = Arg{Param: param}
	}
	def.TemplateCategory, def.Language, def.ProviderTemplateID, def.Args = category, t.Language, t.ProviderTemplateID, args
	return nil
}

// checkParams refuses a request whose params lack one its steps need:
// every param a step's args name, and every param its variables map to
// (which says what is needed even where the template is not known).
func checkParams(steps []StepDef, raw []schemas.Step, params map[string]string) *Rejection {
	for i, st := range steps {
		for _, a := range st.Args {
			if !a.Fixed && !hasKey(params, a.Param) {
				return reject(RejectParamMissing, fmt.Sprintf("steps[%d].template", i), "%s needs param %q", clip(st.Template), clip(a.Param))
			}
		}
		keys := make([]string, 0, len(raw[i].Variables))
		for k := range raw[i].Variables {
			keys = append(keys, k)
		}
		slices.Sort(keys) // the first missing one named is the same every time
		for _, k := range keys {
			if p := raw[i].Variables[k]; !hasKey(params, p) {
				return reject(RejectParamMissing, fmt.Sprintf("steps[%d].template", i), "%s needs param %q for {{%s}}", clip(st.Template), clip(p), clip(k))
			}
		}
	}
	return nil
}

func hasKey(m map[string]string, k string) bool {
	_, ok := m[k]
	return ok
}
