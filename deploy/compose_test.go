// Package deploy holds the deployment files (deploy/Dockerfile, and the
// docker-compose.yml and .dockerignore at the repository root, which the
// build context needs there) and the tests that check them against the
// configuration contract in docs/configuration.md and the Kafka version that
// integration/infra/kafka/pom.xml pins.
package deploy

import (
	"context"
	"encoding/xml"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
)

const (
	composeFile = "../docker-compose.yml"
	dockerfile  = "Dockerfile"
	configDoc   = "../docs/configuration.md"
	kafkaPom    = "../integration/infra/kafka/pom.xml"
)

// fallbackServices run the image built from the Dockerfile.
var fallbackServices = []string{"topics", "processor", "providers", "load"}

var demoServices = []string{"providers", "load"}

// observabilityServices are the `observability` profile's (observability_test.go).
var observabilityServices = []string{"prometheus", "grafana", "otel-collector"}

// loadProject loads docker-compose.yml as `docker compose` would, with the
// given profiles active, without the caller's environment (the file must not
// depend on it).
func loadProject(t *testing.T, profiles ...string) *types.Project {
	t.Helper()
	abs, err := filepath.Abs(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	body, err := os.ReadFile(abs)
	if err != nil {
		t.Fatal(err)
	}
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(abs),
		ConfigFiles: []types.ConfigFile{{Filename: abs, Content: body}},
		Environment: types.Mapping{},
	}
	p, err := loader.LoadWithContext(context.Background(), details, func(o *loader.Options) {
		o.SetProjectName("fallback", true)
		o.Profiles = profiles
		o.ResolvePaths = true
	})
	if err != nil {
		t.Fatalf("load %s: %v", composeFile, err)
	}
	return p
}

func service(t *testing.T, p *types.Project, name string) types.ServiceConfig {
	t.Helper()
	s, err := p.GetService(name)
	if err != nil {
		t.Fatalf("service %q: %v", name, err)
	}
	return s
}

func env(t *testing.T, s types.ServiceConfig, key string) string {
	t.Helper()
	v, ok := s.Environment[key]
	if !ok || v == nil || *v == "" {
		t.Fatalf("service %s: environment %s is not set", s.Name, key)
	}
	return *v
}

// documentedEnv parses the table of docs/configuration.md: the env column of
// every row (`FALLBACK_...`).
func documentedEnv(t *testing.T) map[string]bool {
	t.Helper()
	body, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatal(err)
	}
	envCol := -1
	vars := map[string]bool{}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			envCol = -1 // the table ended
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		for i := range cells {
			cells[i] = strings.Trim(strings.TrimSpace(cells[i]), "`")
		}
		if i := slices.Index(cells, "env"); i >= 0 {
			envCol = i // a table's header (there may be one table per command)
			continue
		}
		if envCol < 0 {
			continue
		}
		if envCol >= len(cells) || strings.Trim(cells[envCol], "-: ") == "" {
			continue // the |---| separator
		}
		if !regexp.MustCompile(`^FALLBACK_[A-Z0-9_]+$`).MatchString(cells[envCol]) {
			t.Fatalf("%s: env column holds %q, not a FALLBACK_* name", configDoc, cells[envCol])
		}
		vars[cells[envCol]] = true
	}
	if len(vars) < 5 {
		t.Fatalf("%s: could not find the flag/env table (found %d variables)", configDoc, len(vars))
	}
	return vars
}

func TestComposeServices(t *testing.T) {
	all := loadProject(t, "*")
	for _, name := range []string{"kafka", "redis", "topics", "processor", "providers", "load"} {
		service(t, all, name)
	}

	// Without a profile, only the stack itself runs.
	def := loadProject(t)
	for _, name := range []string{"kafka", "redis", "topics", "processor"} {
		service(t, def, name)
	}
	for _, name := range demoServices {
		if _, err := def.GetService(name); err == nil {
			t.Errorf("service %s runs without the demo profile", name)
		}
	}
	for _, name := range observabilityServices {
		if _, err := def.GetService(name); err == nil {
			t.Errorf("service %s runs without the observability profile", name)
		}
	}
	for name, s := range all.Services {
		want := []string(nil)
		switch {
		case slices.Contains(demoServices, name):
			want = []string{"demo"}
		case slices.Contains(observabilityServices, name):
			want = []string{"observability"}
		}
		if !slices.Equal(s.Profiles, want) {
			t.Errorf("service %s: profiles %v, want %v", name, s.Profiles, want)
		}
	}
	demo := loadProject(t, "demo")
	for _, name := range demoServices {
		service(t, demo, name)
	}
}

// pomKafkaVersion reads the Kafka version that the scripted services use.
func pomKafkaVersion(t *testing.T) string {
	t.Helper()
	body, err := os.ReadFile(kafkaPom)
	if err != nil {
		t.Fatal(err)
	}
	var pom struct {
		Properties struct {
			Kafka string `xml:"kafka.version"`
		} `xml:"properties"`
	}
	if err := xml.Unmarshal(body, &pom); err != nil {
		t.Fatal(err)
	}
	if pom.Properties.Kafka == "" {
		t.Fatalf("%s: no kafka.version property", kafkaPom)
	}
	return pom.Properties.Kafka
}

func TestComposeImages(t *testing.T) {
	p := loadProject(t, "*")

	kafka := service(t, p, "kafka")
	if want := "apache/kafka:" + pomKafkaVersion(t); kafka.Image != want {
		t.Errorf("kafka image %q, want %q (the version pinned in %s)", kafka.Image, want, kafkaPom)
	}
	if redis := service(t, p, "redis"); !regexp.MustCompile(`^redis:\d`).MatchString(redis.Image) {
		t.Errorf("redis image %q, want a pinned redis:<major> tag", redis.Image)
	}
	if cmd := strings.Join(service(t, p, "redis").Command, " "); !strings.Contains(cmd, "--appendonly yes") {
		t.Errorf("redis command %q does not turn on the AOF (--appendonly yes)", cmd)
	}

	root, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	image := ""
	for _, name := range fallbackServices {
		s := service(t, p, name)
		if s.Build == nil {
			t.Errorf("service %s is not built from the Dockerfile", name)
			continue
		}
		if s.Build.Context != root {
			t.Errorf("service %s: build context %q, want the repository root %q", name, s.Build.Context, root)
		}
		df := s.Build.Dockerfile
		if df == "" {
			df = "Dockerfile"
		}
		if !filepath.IsAbs(df) {
			df = filepath.Join(s.Build.Context, df)
		}
		if df != filepath.Join(root, "deploy", "Dockerfile") {
			t.Errorf("service %s: dockerfile %q, want deploy/Dockerfile", name, df)
		}
		if image == "" {
			image = s.Image
		}
		if s.Image == "" || s.Image != image {
			t.Errorf("service %s: image %q, want the one application image %q", name, s.Image, image)
		}
	}
}

func TestComposeCommands(t *testing.T) {
	p := loadProject(t, "*")
	want := map[string]string{
		"topics":    "topics create",
		"processor": "run",
		"providers": "providers",
		"load":      "load",
	}
	for name, prefix := range want {
		cmd := strings.Join(service(t, p, name).Command, " ")
		if cmd != prefix && !strings.HasPrefix(cmd, prefix+" ") {
			t.Errorf("service %s: command %q, want %q", name, cmd, prefix)
		}
	}
	if proc := service(t, p, "processor"); proc.Restart != types.RestartPolicyUnlessStopped {
		t.Errorf("processor restart %q, want %q", proc.Restart, types.RestartPolicyUnlessStopped)
	}
	if proc := service(t, p, "processor"); proc.ContainerName != "" {
		t.Errorf("processor has container_name %q, which stops it from scaling", proc.ContainerName)
	}
}

func TestComposeDependencies(t *testing.T) {
	p := loadProject(t, "*")
	want := map[string]map[string]string{
		"topics": {"kafka": types.ServiceConditionHealthy},
		"processor": {
			"topics": types.ServiceConditionCompletedSuccessfully,
			"redis":  types.ServiceConditionHealthy,
		},
		"providers": {"topics": types.ServiceConditionCompletedSuccessfully},
	}
	for name, deps := range want {
		s := service(t, p, name)
		for dep, cond := range deps {
			got, ok := s.DependsOn[dep]
			if !ok {
				t.Errorf("service %s does not depend on %s", name, dep)
				continue
			}
			if got.Condition != cond {
				t.Errorf("service %s depends on %s with condition %q, want %q", name, dep, got.Condition, cond)
			}
		}
	}
}

// kafkaListeners maps each listener name of the kafka service to its port and
// advertised host.
type listener struct {
	port           string
	advertisedHost string
	advertisedPort string
}

func kafkaListeners(t *testing.T, kafka types.ServiceConfig) map[string]*listener {
	t.Helper()
	parse := func(key string) map[string][2]string {
		out := map[string][2]string{}
		for _, l := range strings.Split(env(t, kafka, key), ",") {
			name, addr, ok := strings.Cut(strings.TrimSpace(l), "://")
			if !ok {
				t.Fatalf("kafka %s: %q is not NAME://host:port", key, l)
			}
			host, port, err := net.SplitHostPort(addr)
			if err != nil {
				t.Fatalf("kafka %s: %q: %v", key, l, err)
			}
			out[name] = [2]string{host, port}
		}
		return out
	}
	listeners := map[string]*listener{}
	for name, hp := range parse("KAFKA_LISTENERS") {
		listeners[name] = &listener{port: hp[1]}
	}
	for name, hp := range parse("KAFKA_ADVERTISED_LISTENERS") {
		l, ok := listeners[name]
		if !ok {
			t.Fatalf("kafka advertises listener %s that it does not listen on", name)
		}
		l.advertisedHost, l.advertisedPort = hp[0], hp[1]
	}
	return listeners
}

func TestComposeKafka(t *testing.T) {
	p := loadProject(t)
	kafka := service(t, p, "kafka")
	for _, key := range []string{
		"KAFKA_NODE_ID", "KAFKA_PROCESS_ROLES", "KAFKA_CONTROLLER_QUORUM_VOTERS",
		"KAFKA_CONTROLLER_LISTENER_NAMES", "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP",
	} {
		env(t, kafka, key)
	}
	if roles := env(t, kafka, "KAFKA_PROCESS_ROLES"); roles != "broker,controller" && roles != "controller,broker" {
		t.Errorf("KAFKA_PROCESS_ROLES %q, want a single KRaft broker+controller", roles)
	}
	for _, key := range []string{
		"KAFKA_OFFSETS_TOPIC_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR",
		"KAFKA_TRANSACTION_STATE_LOG_MIN_ISR",
	} {
		if v := env(t, kafka, key); v != "1" {
			t.Errorf("kafka %s=%s, want 1 on a single node", key, v)
		}
	}
	if v := env(t, kafka, "KAFKA_AUTO_CREATE_TOPICS_ENABLE"); v != "false" {
		t.Errorf("KAFKA_AUTO_CREATE_TOPICS_ENABLE=%s, want false (the topics service creates them)", v)
	}
	if id, ok := kafka.Environment["CLUSTER_ID"]; ok && id != nil {
		// Kafka wants a base64url UUID: 22 characters.
		if !regexp.MustCompile(`^[A-Za-z0-9_-]{22}$`).MatchString(*id) {
			t.Errorf("CLUSTER_ID %q is not a Kafka UUID (22 base64url characters)", *id)
		}
	}
	listeners := kafkaListeners(t, kafka)
	for _, name := range strings.Split(env(t, kafka, "KAFKA_CONTROLLER_LISTENER_NAMES"), ",") {
		if _, ok := listeners[name]; !ok {
			t.Errorf("controller listener %s is not in KAFKA_LISTENERS", name)
		}
	}

	// The host's 127.0.0.1:9092 reaches a listener advertised as reachable
	// from the host.
	published := false
	for _, port := range kafka.Ports {
		if port.Published != "9092" {
			continue
		}
		published = true
		target := strconv.FormatUint(uint64(port.Target), 10)
		found := false
		for name, l := range listeners {
			if l.port != target {
				continue
			}
			found = true
			if l.advertisedPort != "9092" || (l.advertisedHost != "localhost" && l.advertisedHost != "127.0.0.1") {
				t.Errorf("host port 9092 goes to listener %s, advertised as %s:%s, not as the host's localhost:9092",
					name, l.advertisedHost, l.advertisedPort)
			}
		}
		if !found {
			t.Errorf("host port 9092 goes to container port %s, where no listener is", target)
		}
	}
	if !published {
		t.Error("kafka does not publish port 9092 on the host")
	}
}

func TestComposeRedis(t *testing.T) {
	redis := service(t, loadProject(t), "redis")
	published := false
	for _, port := range redis.Ports {
		if port.Published == "6379" && port.Target == 6379 {
			published = true
		}
	}
	if !published {
		t.Error("redis does not publish port 6379 on the host")
	}
	if len(redis.Volumes) == 0 {
		t.Error("redis has no volume for its data")
	}
}

func TestComposeHealthChecks(t *testing.T) {
	p := loadProject(t)
	want := map[string]string{
		"kafka": "kafka-broker-api-versions.sh",
		"redis": "redis-cli ping",
	}
	for name, probe := range want {
		s := service(t, p, name)
		if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
			t.Errorf("service %s has no health check", name)
			continue
		}
		if test := strings.Join(s.HealthCheck.Test, " "); !strings.Contains(test, probe) {
			t.Errorf("service %s health check %q does not run %q", name, test, probe)
		}
	}
}

// TestComposeProcessorAddresses: the processor reaches Kafka and Redis by
// their service names, on ports where they listen inside the network.
func TestComposeProcessorAddresses(t *testing.T) {
	p := loadProject(t, "*")
	listeners := kafkaListeners(t, service(t, p, "kafka"))
	for _, name := range fallbackServices {
		s := service(t, p, name)
		brokers := env(t, s, "FALLBACK_BROKERS")
		for _, b := range strings.Split(brokers, ",") {
			host, port, err := net.SplitHostPort(strings.TrimSpace(b))
			if err != nil {
				t.Errorf("service %s: FALLBACK_BROKERS %q: %v", name, brokers, err)
				continue
			}
			if host != "kafka" {
				t.Errorf("service %s: FALLBACK_BROKERS %q does not point at the kafka service", name, brokers)
			}
			ok := false
			for _, l := range listeners {
				if l.port == port && l.advertisedHost == "kafka" && l.advertisedPort == port {
					ok = true
				}
			}
			if !ok {
				t.Errorf("service %s: FALLBACK_BROKERS %q: no kafka listener on port %s is advertised as kafka:%s",
					name, brokers, port, port)
			}
		}
	}

	proc := service(t, p, "processor")
	raw := env(t, proc, "FALLBACK_REDIS_URL")
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatalf("FALLBACK_REDIS_URL %q: %v", raw, err)
	}
	if u.Scheme != "redis" || u.Hostname() != "redis" || (u.Port() != "" && u.Port() != "6379") {
		t.Errorf("FALLBACK_REDIS_URL %q does not point at the redis service (redis://redis:6379/<db>)", raw)
	}
	if v := env(t, proc, "FALLBACK_CREATE_TOPICS"); v != "false" {
		t.Errorf("processor FALLBACK_CREATE_TOPICS=%s, want false (the topics service creates them)", v)
	}
}

// TestComposeEnvDocumented: every FALLBACK_* name in the compose file, in an
// environment block or anywhere in the text, is a documented setting.
func TestComposeEnvDocumented(t *testing.T) {
	documented := documentedEnv(t)
	p := loadProject(t, "*")
	for name, s := range p.Services {
		for key := range s.Environment {
			if strings.HasPrefix(key, "FALLBACK_") && !documented[key] {
				t.Errorf("service %s sets %s, which %s does not list", name, key, configDoc)
			}
		}
	}
	body, err := os.ReadFile(composeFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range regexp.MustCompile(`FALLBACK_[A-Z0-9_]+`).FindAllString(string(body), -1) {
		if !documented[key] {
			t.Errorf("%s names %s, which %s does not list", composeFile, key, configDoc)
		}
	}
}

// dockerStage is one FROM ... stage of a Dockerfile.
type dockerStage struct {
	from  string
	lines []string // the instructions after FROM, continuations joined
}

func dockerStages(t *testing.T) []dockerStage {
	t.Helper()
	body, err := os.ReadFile(dockerfile)
	if err != nil {
		t.Fatal(err)
	}
	var stages []dockerStage
	var cur strings.Builder
	flush := func() {
		line := strings.TrimSpace(cur.String())
		cur.Reset()
		if line == "" {
			return
		}
		fields := strings.Fields(line)
		if strings.EqualFold(fields[0], "FROM") {
			img := ""
			for _, f := range fields[1:] {
				if !strings.HasPrefix(f, "--") {
					img = f
					break
				}
			}
			stages = append(stages, dockerStage{from: img})
			return
		}
		if len(stages) == 0 {
			if strings.EqualFold(fields[0], "ARG") {
				return
			}
			t.Fatalf("%s: %q before the first FROM", dockerfile, line)
		}
		stages[len(stages)-1].lines = append(stages[len(stages)-1].lines, line)
	}
	for line := range strings.Lines(string(body)) {
		line = strings.TrimSpace(line)
		if strings.HasPrefix(line, "#") {
			continue
		}
		if cont, ok := strings.CutSuffix(line, "\\"); ok {
			cur.WriteString(cont + " ")
			continue
		}
		cur.WriteString(line)
		flush()
	}
	flush()
	if len(stages) < 2 {
		t.Fatalf("%s: %d stages, want a multi-stage build", dockerfile, len(stages))
	}
	return stages
}

func instruction(line string) (string, string) {
	op, rest, _ := strings.Cut(line, " ")
	return strings.ToUpper(op), strings.TrimSpace(rest)
}

func TestDockerfileNonRoot(t *testing.T) {
	stages := dockerStages(t)
	final := stages[len(stages)-1]
	user := ""
	if strings.HasSuffix(final.from, ":nonroot") || strings.Contains(final.from, ":nonroot-") ||
		strings.Contains(final.from, ":debug-nonroot") {
		user = "nonroot"
	}
	for _, line := range final.lines {
		if op, rest := instruction(line); op == "USER" {
			user = rest
		}
	}
	name, _, _ := strings.Cut(user, ":")
	switch name {
	case "":
		t.Errorf("the final stage (FROM %s) runs as root: no USER and not a :nonroot image", final.from)
	case "root", "0":
		t.Errorf("the final stage runs as USER %s", user)
	}
}

func TestDockerfileBuild(t *testing.T) {
	stages := dockerStages(t)
	if !strings.HasPrefix(stages[0].from, "golang:") {
		t.Errorf("the build stage is FROM %s, want a golang image", stages[0].from)
	}
	built := false
	for _, st := range stages[:len(stages)-1] {
		for _, line := range st.lines {
			op, rest := instruction(line)
			if op == "RUN" && strings.Contains(rest, "go build") && strings.Contains(rest, "./cmd/fallback") {
				built = true
				if !strings.Contains(rest, "-trimpath") {
					t.Errorf("go build without -trimpath: %s", rest)
				}
			}
		}
	}
	if !built {
		t.Error("no stage runs go build ./cmd/fallback")
	}
	body, _ := os.ReadFile(dockerfile)
	if !regexp.MustCompile(`(?m)CGO_ENABLED=0`).Match(body) {
		t.Error("the Dockerfile does not build with CGO_ENABLED=0 (the final image has no libc)")
	}
	final := stages[len(stages)-1]
	var entry, cmd string
	for _, line := range final.lines {
		switch op, rest := instruction(line); op {
		case "ENTRYPOINT":
			entry = rest
		case "CMD":
			cmd = rest
		}
	}
	if entry != `["/fallback"]` {
		t.Errorf("final ENTRYPOINT %s, want [\"/fallback\"]", entry)
	}
	if cmd != `["run"]` {
		t.Errorf("final CMD %s, want [\"run\"]", cmd)
	}
}

// TestDockerignoreKeepsSources: the build context keeps what go build needs.
func TestDockerignoreKeepsSources(t *testing.T) {
	body, err := os.ReadFile("../.dockerignore")
	if err != nil {
		t.Fatal(err)
	}
	for line := range strings.Lines(string(body)) {
		pat := strings.TrimSpace(line)
		if pat == "" || strings.HasPrefix(pat, "#") || strings.HasPrefix(pat, "!") {
			continue
		}
		for _, need := range []string{"go.mod", "go.sum", "cmd/fallback/main.go", "schemas/x.avsc", "processor/x.go", "internal/clients/x.go"} {
			if ok, _ := filepath.Match(pat, need); ok || pat == need || strings.HasPrefix(need, strings.TrimSuffix(pat, "/")+"/") {
				t.Errorf(".dockerignore pattern %q drops %s from the build context", pat, need)
			}
		}
	}
}
