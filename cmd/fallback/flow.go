package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"time"

	"github.com/fallbackd/fallback/internal/cliconfig"
	"github.com/fallbackd/fallback/processor"
	"github.com/fallbackd/fallback/processor/flow"
)

// flowCmd is `fallback flow REQUEST_ID`: it prints a flow's state from
// Redis as JSON, the recipient masked unless --reveal.
func flowCmd(ctx context.Context, args []string) error {
	fs, c := newFlags("flow", "flow [flags] REQUEST_ID", cliconfig.GroupRedis)
	reveal := fs.Bool("reveal", false, "print the recipient unmasked")
	if err := parseCommon(fs, c, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return fmt.Errorf("usage: fallback flow [flags] REQUEST_ID")
	}
	id := fs.Arg(0)
	rc, store, err := redisStore(c)
	if err != nil {
		return err
	}
	defer rc.Close()
	snaps, err := store.Load(ctx, []string{id})
	if err != nil {
		return err
	}
	if !snaps[0].Exists {
		return fmt.Errorf("no flow %q in Redis (never started, or closed longer ago than the tombstone retention)", id)
	}
	st, err := flow.Decode(id, snaps[0].State)
	if err != nil {
		return err
	}
	if !*reveal {
		st.Recipient = processor.MaskPhone(st.Recipient)
	}
	out := map[string]any{"version": snaps[0].Version, "state": st}
	if !st.Closed {
		out["deadline"] = st.DeadlineTime().UTC().Format(time.RFC3339Nano)
	}
	enc := json.NewEncoder(os.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(out)
}
