package bench

import (
	"testing"
	"time"

	"github.com/fallbackd/fallback/internal/simulator"
)

// The bench's requests pass the catalog it stores with --catalog enforce,
// and every step's send gets its template params.
func TestRequestsPassCatalog(t *testing.T) {
	cat := simulator.DemoCatalog("test", time.Now())
	cfg := Config{Catalog: &cat}
	req := otpRequest("run-m1", 1, []time.Duration{5 * time.Second, 60 * time.Second, 30 * time.Second}, time.Now())
	start, r := cfg.validator().ValidateSend(req, nil)
	if r != nil {
		t.Fatalf("refused: %v", r)
	}
	for i, st := range start.Steps {
		if len(st.Args) != 1 || st.Args[0].Param != "code" {
			t.Errorf("step %d (%s %s): args %+v, want the code", i, st.Channel, st.Template, st.Args)
		}
	}
	if _, r := (&Config{}).validator().ValidateSend(req, nil); r != nil {
		t.Fatalf("refused without a catalog: %v", r)
	}
}

// BenchmarkValidateSend is the processor's check of one bench request,
// without a catalog and against the catalog --catalog enforce stores: the
// cost the catalog adds per request, apart from Kafka and Redis. The
// catalog here is a simulator.Catalog (a scan of a few entries), the
// processor's a ConfigTable (maps under a read lock): the lookups differ,
// the checks and the rendering of the args are the same code.
//
//	go test -run XXX -bench ValidateSend ./internal/bench
func BenchmarkValidateSend(b *testing.B) {
	cat := simulator.DemoCatalog("bench", time.Now())
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"catalog=off", Config{}}, {"catalog=enforce", Config{Catalog: &cat}}} {
		b.Run(c.name, func(b *testing.B) {
			v := c.cfg.validator()
			req := otpRequest("run-m1", 1, []time.Duration{5 * time.Second, 5 * time.Second}, time.Now())
			b.ReportAllocs()
			for b.Loop() {
				if _, r := v.ValidateSend(req, nil); r != nil {
					b.Fatal(r)
				}
			}
		})
	}
}
