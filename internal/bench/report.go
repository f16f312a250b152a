package bench

import (
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"
)

// procCPU reads utime+stime of a process from /proc/<pid>/stat (clock
// ticks of 1/100 s, the Linux USER_HZ).
func procCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return 0, err
	}
	s := string(b)
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	f := strings.Fields(s[i+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	ut, err1 := strconv.ParseInt(f[11], 10, 64)
	st, err2 := strconv.ParseInt(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("bad /proc/%d/stat", pid)
	}
	return time.Duration(ut+st) * 10 * time.Millisecond, nil
}

// WriteTable prints the result for a person.
func (r *Result) WriteTable(w io.Writer) {
	row := func(name, value, note string) {
		fmt.Fprintf(w, "  %-36s %16s  %s\n", name, value, note)
	}
	num := func(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
	lat := func(s Stats) string {
		if s.N == 0 {
			return "-"
		}
		return fmt.Sprintf("%s / %s / %s", num(s.P50), num(s.P99), num(s.Max))
	}
	fmt.Fprintf(w, "\nfallback bench: %d flows, %d pending, %s backends, %s processor, clock x%g, delays %v s\n",
		r.Flows, r.Pending, r.Backend, r.Processor, r.ClockSpeed, r.DelaysS)
	fmt.Fprintf(w, "  step 0: %s; later steps: %s; rate %s; catalog %s; events %s; redis wait replicas %d\n\n", r.Mix, r.ThenMix, rateText(r.Rate), r.Catalog, r.Events, r.RedisWaitReplicas)
	row("requests_per_sec", num(r.RequestsPerSec), "request in to first send out")
	dlrsNote := ""
	if r.Events == "lean" {
		dlrsNote = "not measured: lean events have no DLR_RECEIVED"
	}
	row("dlrs_per_sec", num(r.DLRsPerSec), dlrsNote)
	row("deadline_fires_per_sec", num(r.DeadlineFiresPerSec), "")
	row("flows_closed_per_sec", num(r.FlowsClosedPerSec), "first request published to last close")
	row("flows_closed_per_sec_steady", num(r.FlowsClosedPerSecSteady), "10th to 90th percentile close")
	row("deadline_lateness_ms p50/p99/max", lat(r.DeadlineLatenessMS), fmt.Sprintf("wall ms, sent_at - deadline, %d deadlines", r.DeadlineLatenessMS.N))
	row("  emitted p50/p99/max", lat(r.DeadlineLatenessEmittedMS), "wall ms, Kafka timestamp of the output - deadline")
	row("  past deadline+grace p50/p99/max", lat(r.DeadlineLatenessPastGraceMS), fmt.Sprintf("wall ms, sent_at - (deadline + %s ms grace): the event-time rule fires no earlier", num(r.DeadlineGraceMS)))
	row("  past deadline+grace, emitted", lat(r.DeadlineLatenessPastGraceEmittedMS), "wall ms, Kafka timestamp of the output - (deadline + grace)")
	row("redis_bytes_per_inflight_flow", num(r.RedisBytesPerInflightFlow), "INFO used_memory delta / parked flows")
	row("redis_bytes_per_closed_flow", num(r.RedisBytesPerClosedFlow), "INFO used_memory delta (no client/AOF buffers), before the run to all closed and acked / flows")
	row("redis_tombstone_bytes_per_flow", num(r.RedisTombstoneBytesPerFlow), "MEMORY USAGE of the closed flows' records / flows")
	row("redis_provider_index_bytes_per_flow", num(r.RedisProviderIndexBytesPerFlow), fmt.Sprintf("MEMORY USAGE of the <prefix>:pm:* keys / flows (%s keys per flow)", num(r.RedisProviderIndexKeysPerFlow)))
	row("redis_commands_per_flow", num(r.RedisCommandsPerFlow), r.RedisCommandsSource)
	row("cpu_us_per_flow", num(r.CPUUsPerFlow), r.CPUScope)
	if r.RedisCPUUsPerFlow > 0 {
		row("redis_cpu_us_per_flow", num(r.RedisCPUUsPerFlow), "Redis main thread, INFO cpu delta / flows")
	}
	if len(r.RedisCommands) > 0 {
		names := make([]string, 0, len(r.RedisCommands))
		for n := range r.RedisCommands {
			names = append(names, n)
		}
		sort.Slice(names, func(i, j int) bool { return r.RedisCommands[names[i]] > r.RedisCommands[names[j]] })
		var parts []string
		for _, n := range names {
			parts = append(parts, fmt.Sprintf("%s %.2f", n, float64(r.RedisCommands[n])/float64(r.Flows)))
		}
		fmt.Fprintf(w, "  %-36s %s\n", "  per flow", strings.Join(parts, ", "))
	}
	c := r.Counts
	fmt.Fprintf(w, "\n  counts: %d requests, %d first sends, %d fallback sends, %d DLRs published / %d processed, %d deadlines fired, %d closed (%d twice), %d rejected\n",
		c.Requests, c.FirstSends, c.FallbackSends, c.DLRsPublished, c.DLRsProcessed, c.DeadlineFires, c.FlowsClosed, c.DoubleClosed, c.Rejected)
	fmt.Fprintf(w, "  outcomes %v, fallbacks %v; %.2f input and %.2f output records per flow (%s events)\n", c.Outcomes, c.Fallbacks, c.InputsPerFlow, c.OutputsPerFlow, r.Events)
	if sh := r.OutcomeShares; sh.Expected != nil {
		names := []string{"DELIVERED", "FAILED", "EXPIRED"}
		for _, m := range []map[string]float64{sh.Measured, sh.Drawn} {
			for n := range m {
				if !slices.Contains(names, n) {
					names = append(names, n)
				}
			}
		}
		sort.SliceStable(names[3:], func(i, j int) bool { return names[3+i] < names[3+j] })
		fmt.Fprintf(w, "\n  outcome shares, %% of flows:   %10s %10s %10s %10s\n", "expected", "drawn", "measured", "diff pp")
		for _, n := range names {
			fmt.Fprintf(w, "    %-28s %10.2f %10.2f %10.2f %+10.2f\n", n, sh.Expected[n], sh.Drawn[n], sh.Measured[n], sh.Measured[n]-sh.Expected[n])
		}
		fmt.Fprintf(w, "  largest difference, measured vs expected: %.2f percentage points (%s); %d flows closed otherwise than their providers' answers say\n",
			sh.MaxDiffPP, sh.MaxDiffOutcome, sh.FlowsOffDrawn)
		fmt.Fprintf(w, "  (expected: from the mixes, step 0 by --mix and later steps by --then-mix, delivered closes, failed or silent falls back or on the last step closes FAILED or EXPIRED; drawn: from the fates the providers drew for this run's attempts)\n")
	}
	if l := r.Limit; l != nil {
		fmt.Fprintf(w, "\n  limit (%d flows): Redis alone %s flows/s, Kafka alone %s flows/s; lower: %s; processor (steady) / lower = %s\n",
			l.Flows, num(l.RedisFlowsPerSec), num(l.KafkaFlowsPerSec), l.Lower, num(l.Ratio))
		fmt.Fprintf(w, "  Redis alone, plain commands (no scripts, %d connections, %d flows a pipeline): %s flows/s, %s commands per flow; processor (steady) / plain = %s\n",
			plainConns, plainDepth, num(l.RedisPlainFlowsPerSec), num(l.RedisPlainCommandsPerFlow), num(l.RatioToPlain))
		if l.RedisCPUBoundFlowsPerSec > 0 {
			fmt.Fprintf(w, "  Redis's one core saturates at %s flows/s at this run's Redis CPU per flow\n", num(l.RedisCPUBoundFlowsPerSec))
		}
	}
	if p := r.Peer; p != nil {
		if p.Skipped != "" {
			fmt.Fprintf(w, "\n  peer %s: skipped: %s\n", p.Name, p.Skipped)
		} else {
			fmt.Fprintf(w, "\n  peer %s (%s): %d tasks, delay %d ms: enqueue %s/s, handled %s/s over the run, lateness p50/p99/max %s ms\n",
				p.Name, p.Settings, p.Tasks, p.DelayMS, num(p.EnqueuePerSec), num(p.HandledPerSec), lat(p.LatenessMS))
			if p.HandledPerSec > 0 {
				fmt.Fprintf(w, "  processor deadline fires/s over asynq handled/s = %.2fx (compare with --mix silent=1 --then-mix silent=1: every flow is two timers)\n",
					r.DeadlineFiresPerSec/p.HandledPerSec)
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(w, "  note: %s\n", n)
	}
}

func rateText(r float64) string {
	if r == 0 {
		return "as fast as Kafka takes them"
	}
	return strconv.FormatFloat(r, 'f', -1, 64) + " requests/s"
}
