package deploy

// Tests of the `observability` compose profile (Prometheus, Grafana, an
// OpenTelemetry collector) and of the Grafana dashboard, by parsing: there is
// no Docker engine in the tests.

import (
	"encoding/json"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/types"
	"go.yaml.in/yaml/v3"
)

const (
	dashboardFile    = "grafana/fallback-dashboard.json"
	observabilityDoc = "../docs/observability.md"
	metricsPort      = "9464" // --http-addr's default (docs/configuration.md)
)

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	body, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(body, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// repoRoot is the repository's absolute path.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// bindSource returns the host path (absolute, resolved by the loader) that a
// service mounts at target, or "" when nothing is bind-mounted there.
func bindSource(s types.ServiceConfig, target string) string {
	for _, v := range s.Volumes {
		if v.Type == types.VolumeTypeBind && filepath.Clean(v.Target) == filepath.Clean(target) {
			return v.Source
		}
	}
	return ""
}

// flagValue returns the value of --name=value or --name value in a command.
func flagValue(cmd []string, name string) (string, bool) {
	for i, a := range cmd {
		if v, ok := strings.CutPrefix(a, "--"+name+"="); ok {
			return v, true
		}
		if a == "--"+name && i+1 < len(cmd) {
			return cmd[i+1], true
		}
	}
	return "", false
}

// pinnedImage: a tag with a full version number (X.Y or X.Y.Z, not latest
// nor a bare major) or a digest.
var pinnedImage = regexp.MustCompile(`^[a-z0-9./_-]+(:v?\d+\.\d+(\.\d+)?[A-Za-z0-9._-]*)?(@sha256:[0-9a-f]{64})?$`)

// TestObservabilityProfile: compose-go loads the file with the profile on;
// the profile's services run pinned images (not built), with every bind mount
// a file or directory of the repository; the processor exposes its metrics
// port on the compose network.
func TestObservabilityProfile(t *testing.T) {
	p := loadProject(t, "observability")
	for _, name := range []string{"kafka", "redis", "topics", "processor"} {
		service(t, p, name)
	}
	for _, name := range demoServices {
		if _, err := p.GetService(name); err == nil {
			t.Errorf("service %s runs with the observability profile alone", name)
		}
	}
	root := repoRoot(t)
	for _, name := range observabilityServices {
		s := service(t, p, name)
		if s.Build != nil {
			t.Errorf("service %s is built; the profile runs released images", name)
		}
		if !pinnedImage.MatchString(s.Image) || (!strings.Contains(s.Image, ":") && !strings.Contains(s.Image, "@")) {
			t.Errorf("service %s: image %q is not pinned to a version (name:X.Y[.Z] or a digest)", name, s.Image)
		}
		for _, v := range s.Volumes {
			if v.Type != types.VolumeTypeBind {
				continue
			}
			if !strings.HasPrefix(v.Source, root+string(filepath.Separator)) {
				t.Errorf("service %s mounts %s, outside the repository", name, v.Source)
				continue
			}
			if _, err := os.Stat(v.Source); err != nil {
				t.Errorf("service %s mounts %s at %s: %v", name, v.Source, v.Target, err)
			}
			if !v.ReadOnly {
				t.Errorf("service %s mounts %s read-write; the repository's files are mounted :ro", name, v.Source)
			}
		}
	}

	proc := service(t, p, "processor")
	if !slices.Contains(proc.Expose, metricsPort) {
		t.Errorf("processor exposes %v, want %s (its /metrics)", proc.Expose, metricsPort)
	}
	if v, ok := proc.Environment["FALLBACK_HTTP_ADDR"]; ok && v != nil {
		if _, port, err := net.SplitHostPort(*v); err != nil || port != metricsPort {
			t.Errorf("processor FALLBACK_HTTP_ADDR=%q, want port %s", *v, metricsPort)
		}
	}
}

type promConfig struct {
	ScrapeConfigs []struct {
		JobName       string `yaml:"job_name"`
		MetricsPath   string `yaml:"metrics_path"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
	} `yaml:"scrape_configs"`
}

// TestPrometheusScrapesProcessor: Prometheus reads deploy/prometheus/prometheus.yml,
// whose targets are the processor service on 9464, /metrics.
func TestPrometheusScrapesProcessor(t *testing.T) {
	p := loadProject(t, "observability")
	prom := service(t, p, "prometheus")
	cfgPath, ok := flagValue(prom.Command, "config.file")
	if !ok {
		cfgPath = "/etc/prometheus/prometheus.yml" // the image's default
	}
	src := bindSource(prom, cfgPath)
	if want := filepath.Join(repoRoot(t), "deploy", "prometheus", "prometheus.yml"); src != want {
		t.Fatalf("prometheus reads %s from %q, want deploy/prometheus/prometheus.yml mounted there", cfgPath, src)
	}
	var cfg promConfig
	readYAML(t, src, &cfg)

	found := false
	for _, sc := range cfg.ScrapeConfigs {
		if sc.MetricsPath != "" && sc.MetricsPath != "/metrics" {
			continue
		}
		var targets []string // host:port
		for _, st := range sc.StaticConfigs {
			targets = append(targets, st.Targets...)
		}
		for _, d := range sc.DNSSDConfigs {
			if d.Type != "" && d.Type != "A" && d.Type != "AAAA" {
				continue // SRV records carry their own port
			}
			for _, n := range d.Names {
				targets = append(targets, net.JoinHostPort(n, strconv.Itoa(d.Port)))
			}
		}
		for _, target := range targets {
			host, port, err := net.SplitHostPort(target)
			if err != nil {
				t.Errorf("job %s: target %q: %v", sc.JobName, target, err)
				continue
			}
			if host != "processor" || port != metricsPort {
				continue
			}
			found = true
		}
	}
	if !found {
		t.Errorf("%s scrapes no processor:%s/metrics target", src, metricsPort)
	}
	if s := service(t, p, "processor"); strings.Join(s.Command, " ") != "run" {
		t.Errorf("the scraped service runs %v, not the processor (run)", s.Command)
	}
}

type grafanaDatasources struct {
	Datasources []struct {
		Name      string `yaml:"name"`
		UID       string `yaml:"uid"`
		Type      string `yaml:"type"`
		URL       string `yaml:"url"`
		IsDefault bool   `yaml:"isDefault"`
	} `yaml:"datasources"`
}

type grafanaProviders struct {
	Providers []struct {
		Name    string `yaml:"name"`
		Type    string `yaml:"type"`
		Options struct {
			Path string `yaml:"path"`
		} `yaml:"options"`
	} `yaml:"providers"`
}

// TestGrafanaProvisioning: Grafana's provisioning directory is the
// repository's deploy/grafana/provisioning; its datasource is the profile's
// Prometheus, and its dashboard provider reads a directory where the
// repository's dashboard is mounted.
func TestGrafanaProvisioning(t *testing.T) {
	p := loadProject(t, "observability")
	graf := service(t, p, "grafana")
	root := repoRoot(t)
	provDir := "/etc/grafana/provisioning"
	if v, ok := graf.Environment["GF_PATHS_PROVISIONING"]; ok && v != nil {
		provDir = *v
	}
	src := bindSource(graf, provDir)
	if want := filepath.Join(root, "deploy", "grafana", "provisioning"); src != want {
		t.Fatalf("grafana's %s is %q, want deploy/grafana/provisioning mounted there", provDir, src)
	}

	// Datasources: a Prometheus at the prometheus service.
	dsFiles, _ := filepath.Glob(filepath.Join(src, "datasources", "*.y*ml"))
	if len(dsFiles) == 0 {
		t.Fatalf("no datasource file in %s/datasources", src)
	}
	promUIDs := map[string]bool{}
	for _, f := range dsFiles {
		var ds grafanaDatasources
		readYAML(t, f, &ds)
		for _, d := range ds.Datasources {
			if d.Type != "prometheus" {
				continue
			}
			u, err := url.Parse(d.URL)
			if err != nil || u.Hostname() != "prometheus" || u.Port() != "9090" {
				t.Errorf("%s: datasource %s url %q, want http://prometheus:9090", f, d.Name, d.URL)
			}
			if d.UID == "" {
				t.Errorf("%s: datasource %s has no uid (the dashboard selects it by uid)", f, d.Name)
			}
			promUIDs[d.UID] = true
		}
	}
	if len(promUIDs) == 0 {
		t.Fatalf("%s/datasources provisions no Prometheus datasource", src)
	}
	service(t, p, "prometheus") // the datasource's host

	// Dashboards: each provider's path holds the mounted dashboard file.
	provFiles, _ := filepath.Glob(filepath.Join(src, "dashboards", "*.y*ml"))
	if len(provFiles) == 0 {
		t.Fatalf("no dashboard provider file in %s/dashboards", src)
	}
	dash := filepath.Join(root, "deploy", dashboardFile)
	provisioned := false
	for _, f := range provFiles {
		var pv grafanaProviders
		readYAML(t, f, &pv)
		for _, prov := range pv.Providers {
			if prov.Type != "" && prov.Type != "file" {
				continue
			}
			dir := filepath.Clean(prov.Options.Path)
			for _, v := range graf.Volumes {
				if v.Type != types.VolumeTypeBind {
					continue
				}
				target := filepath.Clean(v.Target)
				switch {
				case target == dir && v.Source == filepath.Dir(dash),
					filepath.Dir(target) == dir && v.Source == dash:
					provisioned = true
				}
			}
		}
	}
	if !provisioned {
		t.Errorf("no dashboard provider's path holds %s (mounted into grafana)", dashboardFile)
	}

	// The dashboard's default datasource is the provisioned one.
	d := loadDashboard(t)
	for _, v := range d.Templating.List {
		if v.Type == "datasource" && v.Query == "prometheus" {
			if uid, _ := v.Current.Value.(string); !promUIDs[uid] {
				t.Errorf("dashboard variable %s defaults to datasource %q, want a provisioned uid %v", v.Name, uid, promUIDs)
			}
		}
	}
	if home, ok := graf.Environment["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]; ok && home != nil {
		if bindSource(graf, *home) != dash {
			t.Errorf("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH=%s is not where %s is mounted", *home, dashboardFile)
		}
	}
}

type collectorConfig struct {
	Receivers map[string]struct {
		Protocols map[string]struct {
			Endpoint string `yaml:"endpoint"`
		} `yaml:"protocols"`
	} `yaml:"receivers"`
	Exporters map[string]any `yaml:"exporters"`
	Service   struct {
		Pipelines map[string]struct {
			Receivers  []string `yaml:"receivers"`
			Processors []string `yaml:"processors"`
			Exporters  []string `yaml:"exporters"`
		} `yaml:"pipelines"`
	} `yaml:"service"`
	Processors map[string]any `yaml:"processors"`
}

// TestOTelCollector: the collector reads deploy/otel/collector.yaml, which
// receives OTLP on the network and sends traces to the debug exporter.
func TestOTelCollector(t *testing.T) {
	p := loadProject(t, "observability")
	col := service(t, p, "otel-collector")
	cfgPath, ok := flagValue(col.Command, "config")
	if !ok {
		t.Fatalf("otel-collector command %v has no --config", col.Command)
	}
	src := bindSource(col, cfgPath)
	if want := filepath.Join(repoRoot(t), "deploy", "otel", "collector.yaml"); src != want {
		t.Fatalf("otel-collector reads %s from %q, want deploy/otel/collector.yaml mounted there", cfgPath, src)
	}
	var cfg collectorConfig
	readYAML(t, src, &cfg)
	otlp, ok := cfg.Receivers["otlp"]
	if !ok {
		t.Fatal("collector: no otlp receiver")
	}
	for proto, port := range map[string]string{"grpc": "4317", "http": "4318"} {
		pr, ok := otlp.Protocols[proto]
		if !ok {
			t.Errorf("collector: otlp receiver without %s", proto)
			continue
		}
		// The default endpoint is localhost: other containers would not reach it.
		host, p, err := net.SplitHostPort(pr.Endpoint)
		if err != nil || (host != "0.0.0.0" && host != "") || p != port {
			t.Errorf("collector: otlp %s endpoint %q, want 0.0.0.0:%s", proto, pr.Endpoint, port)
		}
	}
	if _, ok := cfg.Exporters["debug"]; !ok {
		t.Error("collector: no debug exporter")
	}
	traces, ok := cfg.Service.Pipelines["traces"]
	if !ok {
		t.Fatal("collector: no traces pipeline")
	}
	if !slices.Contains(traces.Receivers, "otlp") || !slices.Contains(traces.Exporters, "debug") {
		t.Errorf("collector: traces pipeline %+v, want otlp to debug", traces)
	}
	for name, pl := range cfg.Service.Pipelines {
		for _, r := range pl.Receivers {
			if _, ok := cfg.Receivers[r]; !ok {
				t.Errorf("collector: pipeline %s names receiver %s, which is not configured", name, r)
			}
		}
		for _, pr := range pl.Processors {
			if _, ok := cfg.Processors[pr]; !ok {
				t.Errorf("collector: pipeline %s names processor %s, which is not configured", name, pr)
			}
		}
		for _, e := range pl.Exporters {
			if _, ok := cfg.Exporters[e]; !ok {
				t.Errorf("collector: pipeline %s names exporter %s, which is not configured", name, e)
			}
		}
	}
}

// dashboard is the part of a Grafana dashboard JSON the tests read.
type dashboard struct {
	UID        string  `json:"uid"`
	Title      string  `json:"title"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name    string `json:"name"`
			Type    string `json:"type"`
			Query   string `json:"query"`
			Current struct {
				Value any `json:"value"`
			} `json:"current"`
		} `json:"list"`
	} `json:"templating"`
}

type panel struct {
	ID      int     `json:"id"`
	Title   string  `json:"title"`
	Type    string  `json:"type"`
	Panels  []panel `json:"panels"` // a collapsed row's
	Targets []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
}

func loadDashboard(t *testing.T) dashboard {
	t.Helper()
	body, err := os.ReadFile(dashboardFile)
	if err != nil {
		t.Fatal(err)
	}
	var d dashboard
	if err := json.Unmarshal(body, &d); err != nil {
		t.Fatalf("%s: %v", dashboardFile, err)
	}
	if d.UID == "" || d.Title == "" || len(d.Panels) == 0 {
		t.Fatalf("%s: no uid, title or panels", dashboardFile)
	}
	return d
}

// dashboardQueries returns every PromQL expression of the dashboard, keyed
// "panel title/refId".
func dashboardQueries(t *testing.T, d dashboard) map[string]string {
	t.Helper()
	out := map[string]string{}
	ids := map[int]bool{}
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if ids[p.ID] {
				t.Errorf("%s: panel id %d used twice", dashboardFile, p.ID)
			}
			ids[p.ID] = true
			if p.Type != "row" && len(p.Targets) == 0 {
				t.Errorf("%s: panel %q has no query", dashboardFile, p.Title)
			}
			for _, tg := range p.Targets {
				if strings.TrimSpace(tg.Expr) == "" {
					t.Errorf("%s: panel %q query %s has no expr", dashboardFile, p.Title, tg.RefID)
					continue
				}
				out[p.Title+"/"+tg.RefID] = tg.Expr
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

var (
	promStrings   = regexp.MustCompile(`"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|` + "`[^`]*`")
	promMatchers  = regexp.MustCompile(`\{[^}]*\}`)
	promRanges    = regexp.MustCompile(`\[[^\]]*\]`)
	promLabelArgs = regexp.MustCompile(`\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)`)
	promIdent     = regexp.MustCompile(`[A-Za-z_:][A-Za-z0-9_:]*`)
	promKeywords  = map[string]bool{"and": true, "or": true, "unless": true, "bool": true, "offset": true,
		"by": true, "without": true, "on": true, "ignoring": true, "group_left": true, "group_right": true,
		"inf": true, "nan": true, "atan2": true}
)

// metricNames returns the metric names a PromQL expression selects: the
// identifiers left once strings, label matchers, range and offset brackets,
// by/without/on/ignoring label lists, function and aggregation names (an
// identifier followed by "("), keywords, numbers and Grafana's $variables
// are taken out.
func metricNames(expr string) []string {
	s := promStrings.ReplaceAllString(expr, " ")
	s = promMatchers.ReplaceAllString(s, " ")
	s = promRanges.ReplaceAllString(s, " ")
	s = promLabelArgs.ReplaceAllString(s, " ")
	var names []string
	for _, loc := range promIdent.FindAllStringIndex(s, -1) {
		word := s[loc[0]:loc[1]]
		if loc[0] > 0 {
			if prev := s[loc[0]-1]; prev == '$' || prev == '.' || (prev >= '0' && prev <= '9') {
				continue // a Grafana variable or part of a number (1e3, 0x1f)
			}
		}
		if rest := strings.TrimLeft(s[loc[1]:], " \t\n"); strings.HasPrefix(rest, "(") {
			continue // a function or an aggregation
		}
		if promKeywords[strings.ToLower(word)] {
			continue
		}
		names = append(names, word)
	}
	return names
}

func TestMetricNames(t *testing.T) {
	for expr, want := range map[string][]string{
		`sum by (reason) (rate(fallback_fallbacks_total{reason!="x"}[$__rate_interval]))`:                                 {"fallback_fallbacks_total"},
		`histogram_quantile(0.99, sum by (le, op) (rate(fallback_redis_duration_seconds_bucket[5m])))`:                    {"fallback_redis_duration_seconds_bucket"},
		`sum(rate(a_sum[1m])) / sum(rate(a_count[1m])) or vector(0)`:                                                      {"a_sum", "a_count"},
		`sum(increase(fallback_x_total[$__range] offset 1h)) > 1e3 and on(job) up{job="fallback_y_total"}`:                {"fallback_x_total", "up"},
		`max without (partition) (fallback_lag) * 2`:                                                                      {"fallback_lag"},
		`{__name__="fallback_flows_started_total"}`:                                                                       nil,
		`sum by (source) (rate(fallback_batch_size_sum[$__rate_interval])) / on (source) group_left () foo_count`:         {"fallback_batch_size_sum", "foo_count"},
		`label_replace(fallback_g, "dst", "$1", "src", "(.*)")`:                                                           {"fallback_g"},
		`sum(rate(fallback_records_total[$__rate_interval]))  /  ignoring(x)  sum(rate(fallback_dead_letters_total[5m]))`: {"fallback_records_total", "fallback_dead_letters_total"},
	} {
		if got := metricNames(expr); !slices.Equal(got, want) {
			t.Errorf("metricNames(%q) = %q, want %q", expr, got, want)
		}
	}
}

// docMetric is one row of docs/observability.md's metric tables.
type docMetric struct {
	otel, prom, typ string
}

// documentedMetrics parses the metric tables of docs/observability.md (those
// with a "Prometheus name" column), keyed by Prometheus name.
func documentedMetrics(t *testing.T) map[string]docMetric {
	t.Helper()
	body, err := os.ReadFile(observabilityDoc)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]docMetric{}
	otelCol, promCol, typeCol := -1, -1, -1
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			otelCol, promCol, typeCol = -1, -1, -1 // the table ended
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if i := slices.Index(cells, "Prometheus name"); i >= 0 {
			promCol, otelCol, typeCol = i, slices.Index(cells, "OTel name"), slices.Index(cells, "type")
			continue
		}
		if promCol < 0 || promCol >= len(cells) || strings.Trim(cells[promCol], "-: ") == "" {
			continue // not a metric table, or its |---| separator
		}
		m := docMetric{prom: cells[promCol]}
		if otelCol >= 0 && otelCol < len(cells) {
			m.otel = cells[otelCol]
		}
		if typeCol >= 0 && typeCol < len(cells) {
			m.typ = cells[typeCol]
		}
		if !regexp.MustCompile(`^[a-zA-Z_:][a-zA-Z0-9_:]*$`).MatchString(m.prom) {
			t.Fatalf("%s: Prometheus name column holds %q", observabilityDoc, m.prom)
		}
		out[m.prom] = m
	}
	if len(out) < 10 {
		t.Fatalf("%s: found only %d metrics in its tables", observabilityDoc, len(out))
	}
	return out
}

// registeredNames returns the string literals "fallback.…" of the module's
// non-test Go files: the OTel instrument names the code registers.
func registeredNames(t *testing.T) map[string]bool {
	t.Helper()
	names := map[string]bool{}
	lit := regexp.MustCompile(`"(fallback\.[a-z0-9_.]+)"`)
	err := filepath.WalkDir("..", func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") && path != ".." || d.Name() == "testdata" || d.Name() == "integration") {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		for _, m := range lit.FindAllStringSubmatch(string(body), -1) {
			names[m[1]] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return names
}

// TestDashboardMetricsServed checks that every metric the dashboard queries
// is served on /metrics, in two halves:
//
//   - here: every metric name in every PromQL expr of
//     deploy/grafana/fallback-dashboard.json is a row of docs/observability.md's
//     metric tables (its Prometheus name, or a histogram's _bucket, _sum or
//     _count series), that row's OTel name is registered in the code, and its
//     Prometheus name is the one the OTel Prometheus exporter makes of it;
//   - in internal/observe: TestMetricsServed runs flows through a processor
//     with the real OTel SDK and exporter, scrapes /metrics with the
//     Prometheus text parser and finds the documented metrics under those
//     names, and TestEveryMetricDocumented keeps the tables in step with
//     processor/metrics.go.
//
// Together: a dashboard query that names a metric the processor does not
// serve fails one of them.
func TestDashboardMetricsServed(t *testing.T) {
	documented := documentedMetrics(t)
	registered := registeredNames(t)
	queries := dashboardQueries(t, loadDashboard(t))
	if len(queries) < 20 {
		t.Fatalf("%s: only %d queries", dashboardFile, len(queries))
	}
	queried := map[string]bool{}
	for where, expr := range queries {
		names := metricNames(expr)
		if len(names) == 0 {
			t.Errorf("%s: %s: %q selects no metric by name", dashboardFile, where, expr)
		}
		for _, n := range names {
			m, ok := documented[n]
			if ok && strings.HasPrefix(m.typ, "histogram") {
				t.Errorf("%s: %s queries %s, a histogram: its series are %s_bucket, _sum and _count", dashboardFile, where, n, n)
				continue
			}
			if !ok {
				for _, suffix := range []string{"_bucket", "_sum", "_count"} {
					if base, cut := strings.CutSuffix(n, suffix); cut && strings.HasPrefix(documented[base].typ, "histogram") {
						m, ok = documented[base], true
					}
				}
			}
			if !ok {
				t.Errorf("%s: %s queries %s, which %s does not list", dashboardFile, where, n, observabilityDoc)
				continue
			}
			queried[m.prom] = true
		}
	}
	for prom := range queried {
		m := documented[prom]
		if !registered[m.otel] {
			t.Errorf("%s: %s (OTel %q) is registered nowhere in the code", observabilityDoc, prom, m.otel)
		}
		if want := exporterName(m); want != prom {
			t.Errorf("%s: %s is documented as %s, but the exporter serves it as %s", observabilityDoc, m.otel, prom, want)
		}
	}

	// The panels the dashboard is for.
	for _, want := range []string{
		"fallback_flows_started_total", "fallback_flows_closed_total", "fallback_fallbacks_total",
		"fallback_sends_total", "fallback_dlrs_total", "fallback_dlrs_discarded_total",
		"fallback_requests_rejected_total", "fallback_dead_letters_total",
		"fallback_multi_channel_deliveries_total", "fallback_deadline_lateness_seconds",
		"fallback_flow_time_to_outcome_seconds", "fallback_deadlines_forced_total",
		"fallback_requests_paused_total", "fallback_redis_duration_seconds", "fallback_batch_size",
		"fallback_deadlines_pending", "fallback_deadlines_held", "fallback_watermark_lag_seconds",
		"fallback_consumer_lag",
	} {
		if !queried[want] {
			t.Errorf("%s does not query %s", dashboardFile, want)
		}
	}
}

// exporterName is the Prometheus name the OTel Prometheus exporter serves an
// instrument under: dots become underscores, a unit of seconds adds
// _seconds, and a counter ends in _total.
func exporterName(m docMetric) string {
	n := strings.ReplaceAll(m.otel, ".", "_")
	if strings.Contains(m.typ, "(s)") && !strings.HasSuffix(n, "_seconds") {
		n += "_seconds"
	}
	if strings.HasPrefix(m.typ, "counter") && !strings.HasSuffix(n, "_total") {
		n += "_total"
	}
	return n
}
