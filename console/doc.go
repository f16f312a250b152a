// Package console is the web console of fallback (issue 18): the screens
// of the source page ("New Fallback Flow", "Configure Second Channel") on
// top of the catalog and the flow lifecycle. People who are not Kafka
// engineers build, preview, test, publish and watch flows with it.
//
// It is server-rendered (html/template, net/http) with its templates and
// assets embedded, so it works air-gapped. Every rule a page shows comes
// from package processor/flow, the processor's own rules: the console
// never has a second copy, and its one small script only asks the server.
//
// The console depends only on the interfaces of store.go (Store, Stories,
// Outcomes); `fallback console` wires the real ones, tests use fakes.
// docs/console.md says how to run it and what each page does.
//
// Files by concern: console.go (Config, New, the routes) and store.go
// (the interfaces); who may do what: users.go, sessions.go, auth.go,
// ratelimit.go, listen.go; render.go (templates, page data, messages
// across a redirect); rules.go (the checks, configstore's); one file per
// page: flows.go, editor.go with editor_form.go (the form as typed),
// editor_view.go (its choices), editor_preview.go, editor_lifecycle.go
// (unpublish, delete), check.go (what the script asks), history.go,
// testrun.go, catalog.go, lookup.go, outcomes.go; audit.go (the change
// log). templates/ holds one page a file, static/ the stylesheet and the
// script.
package console
